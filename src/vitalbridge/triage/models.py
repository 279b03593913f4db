"""Triage tables (SPEC §6): alerts, their events (history + feed) and per-patient rule overrides.

``alert_events`` is both the alert's audit-quality history (who changed what, when) and the
feed other features consume (push notifications): one table, so the two can never disagree.
Rows are only inserted, by ``triage.alerts``; the consumer may set ``dispatched_at``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from vitalbridge.db.base import Base, new_id, utcnow
from vitalbridge.db.types import UTCDateTime, str_enum
from vitalbridge.triage.codes import AlertEventKind, AlertStatus, Severity

# One unresolved alert per patient and rule: repeats update it instead of flooding the queue.
_UNRESOLVED = text("status <> 'resolved'")


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_unresolved_patient_rule",
            "patient_id",
            "rule_code",
            unique=True,
            sqlite_where=_UNRESOLVED,
            postgresql_where=_UNRESOLVED,
        ),
        Index("ix_alerts_org_status_opened", "organization_id", "status", "opened_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    rule_code: Mapped[str] = mapped_column(String(64))
    severity: Mapped[Severity] = mapped_column(str_enum(Severity, 16))
    status: Mapped[AlertStatus] = mapped_column(str_enum(AlertStatus, 16), default=AlertStatus.open)
    assignee_user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    first_reading_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    last_reading_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # The most recent readings that breached (bounded, newest last).
    reading_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    # What the rule saw last: metric, value, level, window — for the dashboard, never for push.
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class AlertEvent(Base):
    __tablename__ = "alert_events"
    __table_args__ = (
        Index("ix_alert_events_alert_seq", "alert_id", "seq"),
        Index("ix_alert_events_dispatched_seq", "dispatched_at", "seq"),
    )

    # Database-assigned and increasing; consumers page by it (see docs/architecture-readings.md).
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    patient_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[AlertEventKind] = mapped_column(str_enum(AlertEventKind, 16))
    rule_code: Mapped[str] = mapped_column(String(64))
    severity: Mapped[Severity] = mapped_column(str_enum(Severity, 16))
    from_status: Mapped[AlertStatus | None] = mapped_column(str_enum(AlertStatus, 16), nullable=True)
    to_status: Mapped[AlertStatus] = mapped_column(str_enum(AlertStatus, 16))
    actor: Mapped[str] = mapped_column(String(100))
    reading_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    assignee_user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    note: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set by the consumer (push) once it has handled the event; triage never reads it.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PatientThresholds(Base):
    """Per-patient rule overrides, merged over the program's rules by rule code."""

    __tablename__ = "patient_thresholds"

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
