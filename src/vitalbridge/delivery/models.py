"""The outbox (SPEC §7, DESIGN principle 1): the contract between ingest and the delivery worker.

One row per measurement, committed in the same transaction as the reading. State machine
(docs/architecture-readings.md)::

    blocked ──(device assigned / patient linked)──▶ pending ──claim──▶ in_flight ──201──▶ delivered
                                                       ▲                   │
                                                       └──retry / lease────┘──permanent or too old──▶ dead

Only ``blocked → pending`` is done by this feature (``delivery.outbox``); the worker owns the rest.
``resource`` is always an Observation that passed validation; a blocked row's resource lacks
``subject`` until the patient is known.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vitalbridge.db.base import Base, new_id, utcnow
from vitalbridge.db.types import UTCDateTime, str_enum
from vitalbridge.tenancy.models import DeliveryChannel


class OutboxStatus(enum.StrEnum):
    pending = "pending"  # deliverable once next_attempt_at has passed
    in_flight = "in_flight"  # claimed by a worker until lease_expires_at
    delivered = "delivered"  # the EHR stored it (ehr_resource_id set)
    dead = "dead"  # given up; inspect and replay
    blocked = "blocked"  # not deliverable yet (see blocked_reason)


class BlockedReason(enum.StrEnum):
    device_unassigned = "device_unassigned"  # the device has no patient: released on assignment
    patient_unlinked = "patient_unlinked"  # the patient has no EHR id yet: released when linked


class OutboxEntry(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        # The worker's claim query: status = 'pending' AND next_attempt_at <= now ORDER BY next_attempt_at.
        Index("ix_outbox_status_next_attempt", "status", "next_attempt_at"),
        Index("ix_outbox_patient_status", "patient_id", "status"),
        Index("ix_outbox_practice_status", "practice_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # None while the reading has no patient (the practice follows from the patient).
    practice_id: Mapped[str | None] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"), nullable=True)
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"), nullable=True)
    reading_id: Mapped[str] = mapped_column(ForeignKey("readings.id", ondelete="CASCADE"))
    measurement_id: Mapped[str] = mapped_column(ForeignKey("measurements.id", ondelete="CASCADE"), unique=True)
    channel: Mapped[DeliveryChannel] = mapped_column(str_enum(DeliveryChannel, 16))
    resource: Mapped[dict[str, Any]] = mapped_column(JSON)
    # "system|value" of the Observation identifier: the If-None-Exist search token.
    idempotency_key: Mapped[str] = mapped_column(String(400))
    status: Mapped[OutboxStatus] = mapped_column(str_enum(OutboxStatus, 16))
    blocked_reason: Mapped[BlockedReason | None] = mapped_column(str_enum(BlockedReason), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Codes and the server's OperationOutcome diagnostics only: never resource values.
    last_error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ehr_resource_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
