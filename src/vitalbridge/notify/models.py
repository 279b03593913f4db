"""Push notification tables (SPEC §6, §8).

- ``push_devices``: a clinician's FCM registration tokens. The token is a credential-like
  identifier: stored sealed (AES-GCM under the key-encryption key) for sending, and as a SHA-256
  hash for lookups and uniqueness; it is never logged or returned.
- ``push_outbox``: one notification to one device, claimed by a sender under a lease and retried
  with ``next_attempt_at`` — the same state machine as the EHR outbox (docs/architecture-readings.md).
  ``UNIQUE (alert_id, action, device_id)`` makes "one push when an alert opens, one when it
  resolves" a property of the schema, not of careful code.
- ``program_alerting``: a program's on-call list and its escalation delay override.
- ``alert_escalations``: an alert escalated for being unacknowledged (at most once).
- ``quiet_hours``: a user's (or, with ``user_id`` NULL, an organization's) quiet window.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from vitalbridge.db.base import Base, new_id, utcnow
from vitalbridge.db.types import UTCDateTime, str_enum
from vitalbridge.notify.codes import AlertType, Platform, PushAction, PushStatus, TokenStatus
from vitalbridge.triage.codes import Severity


class PushDevice(Base):
    __tablename__ = "push_devices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    platform: Mapped[Platform] = mapped_column(str_enum(Platform, 16))
    # One row per token value across the hub: one user holds it (a colleague in the same
    # organization can take it over; another organization cannot, see notify/registry.py).
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[TokenStatus] = mapped_column(str_enum(TokenStatus, 16), default=TokenStatus.active)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    prune_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class PushOutbox(Base):
    __tablename__ = "push_outbox"
    __table_args__ = (
        UniqueConstraint("alert_id", "action", "device_id", name="uq_push_outbox_alert_action_device"),
        Index("ix_push_outbox_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(ForeignKey("push_devices.id", ondelete="CASCADE"), index=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    # The alert event that caused it (history: which change notified whom).
    event_seq: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), nullable=True)
    action: Mapped[PushAction] = mapped_column(str_enum(PushAction, 32))
    alert_type: Mapped[AlertType] = mapped_column(str_enum(AlertType, 32))
    severity: Mapped[Severity] = mapped_column(str_enum(Severity, 16))
    status: Mapped[PushStatus] = mapped_column(str_enum(PushStatus, 16), default=PushStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set when quiet hours held the push back: it goes out at this time, not dropped.
    deferred_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # FCM error code and status, or our own reason: never the message or the token.
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # FCM's message name (projects/…/messages/…) once accepted.
    fcm_message_name: Mapped[str | None] = mapped_column(String(300), nullable=True)


class ProgramAlerting(Base):
    __tablename__ = "program_alerting"

    program_id: Mapped[str] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    # Hub user ids, in call order; users deleted since are skipped when read.
    on_call_user_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Overrides VB_ESCALATION_MINUTES for this program's patients.
    escalation_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class AlertEscalation(Base):
    __tablename__ = "alert_escalations"

    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    # The ``escalated`` alert event this escalation wrote (tells it apart from a severity rise).
    event_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), unique=True)
    escalated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    target_user_ids: Mapped[list[str]] = mapped_column(JSON, default=list)


_ORG_DEFAULT = text("user_id IS NULL")
_PER_USER = text("user_id IS NOT NULL")


class QuietHours(Base):
    __tablename__ = "quiet_hours"
    __table_args__ = (
        Index(
            "uq_quiet_hours_org_default",
            "organization_id",
            unique=True,
            sqlite_where=_ORG_DEFAULT,
            postgresql_where=_ORG_DEFAULT,
        ),
        Index("uq_quiet_hours_user", "user_id", unique=True, sqlite_where=_PER_USER, postgresql_where=_PER_USER),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    # IANA zone name, e.g. America/Chicago: quiet hours follow the clinician's clock, DST included.
    time_zone: Mapped[str] = mapped_column(String(64))
    # "HH:MM" local times; a window may cross midnight (22:00-07:00). Equal times: no quiet hours.
    starts: Mapped[str] = mapped_column(String(5))
    ends: Mapped[str] = mapped_column(String(5))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
