"""API shapes of deliveries (``/api/v1/deliveries/``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from vitalbridge.delivery.models import OutboxEntry


class DeliveryOut(BaseModel):
    id: str
    practice_id: str | None
    patient_id: str | None
    reading_id: str
    measurement_id: str
    channel: str
    status: str
    blocked_reason: str | None
    dead_reason: str | None
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    ehr_resource_id: str | None
    last_status_code: int | None
    # Codes, the hub's message and the EHR's OperationOutcome diagnostics (may quote values).
    last_error: str | None

    @classmethod
    def of(cls, row: OutboxEntry) -> DeliveryOut:
        return cls(
            id=row.id,
            practice_id=row.practice_id,
            patient_id=row.patient_id,
            reading_id=row.reading_id,
            measurement_id=row.measurement_id,
            channel=row.channel.value,
            status=row.status.value,
            blocked_reason=row.blocked_reason.value if row.blocked_reason else None,
            dead_reason=row.dead_reason,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            delivered_at=row.delivered_at,
            ehr_resource_id=row.ehr_resource_id,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
        )


class DeliveryDetailOut(DeliveryOut):
    resource: dict[str, Any]

    @classmethod
    def of(cls, row: OutboxEntry) -> DeliveryDetailOut:
        return cls(**DeliveryOut.of(row).model_dump(), resource=row.resource)
