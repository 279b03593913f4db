"""API shapes for devices, readings and the quarantine (SPEC §5)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vitalbridge.delivery.models import BlockedReason, OutboxEntry, OutboxStatus
from vitalbridge.devices.models import (
    Device,
    Measurement,
    QuarantinedPayload,
    QuarantineReason,
    QuarantineStatus,
    Reading,
)
from vitalbridge.devices.readings import (
    MealContext,
    MeasurementKind,
    ReadingOrigin,
    ReadingSource,
    ReadingType,
    with_offset,
)

SERIAL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$"


class DeviceAssignIn(BaseModel):
    """Assign (patient_id set), reassign (another patient) or unassign (patient_id null) a device."""

    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(pattern=SERIAL_PATTERN, description="IMEI or serial as the gateway reports it")
    patient_id: str | None = Field(description="hub patient id; null unassigns")
    model: str | None = Field(default=None, max_length=100)
    manufacturer: str | None = Field(default=None, max_length=100)


class DeviceOut(BaseModel):
    id: str
    device_id: str
    model: str | None
    manufacturer: str | None
    patient_id: str | None
    assigned_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, d: Device) -> DeviceOut:
        return cls(
            id=d.id,
            device_id=d.serial,
            model=d.model,
            manufacturer=d.manufacturer,
            patient_id=d.patient_id,
            assigned_at=d.assigned_at,
            created_at=d.created_at,
        )


class DeviceAssignOut(DeviceOut):
    previous_patient_id: str | None
    released_readings: int


class DeliveryOut(BaseModel):
    status: OutboxStatus
    blocked_reason: BlockedReason | None
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    ehr_resource_id: str | None
    last_status_code: int | None
    last_error: str | None

    @classmethod
    def of(cls, e: OutboxEntry) -> DeliveryOut:
        return cls(
            status=e.status,
            blocked_reason=e.blocked_reason,
            attempts=e.attempts,
            next_attempt_at=e.next_attempt_at,
            delivered_at=e.delivered_at,
            ehr_resource_id=e.ehr_resource_id,
            last_status_code=e.last_status_code,
            last_error=e.last_error,
        )


class MeasurementOut(BaseModel):
    id: str
    kind: MeasurementKind
    unit: str
    value: float | None
    systolic: float | None
    diastolic: float | None
    original_value: float | None
    original_unit: str | None
    delivery: DeliveryOut | None

    @classmethod
    def of(cls, m: Measurement, entry: OutboxEntry | None) -> MeasurementOut:
        return cls(
            id=m.id,
            kind=m.kind,
            unit=m.unit.value,
            value=m.value,
            systolic=m.systolic,
            diastolic=m.diastolic,
            original_value=m.original_value,
            original_unit=m.original_unit.value if m.original_unit else None,
            delivery=DeliveryOut.of(entry) if entry else None,
        )


class ReadingOut(BaseModel):
    id: str
    gateway_id: str
    gateway_reading_id: str
    source: ReadingSource
    origin: ReadingOrigin = Field(
        description="device-transmitted or manually entered; only the former counts for billing"
    )
    device_id: str
    device_serial: str | None
    patient_id: str | None
    type: ReadingType
    measured_at: datetime = Field(description="in the device's own UTC offset")
    received_at: datetime
    unassigned: bool
    irregular_heartbeat: bool | None
    meal_context: MealContext | None
    triaged: bool
    measurements: list[MeasurementOut]

    @classmethod
    def of(cls, r: Reading, serial: str | None, measurements: list[MeasurementOut]) -> ReadingOut:
        return cls(
            id=r.id,
            gateway_id=r.gateway_id,
            gateway_reading_id=r.gateway_reading_id,
            source=r.source,
            origin=r.origin,
            device_id=r.device_id,
            device_serial=serial,
            patient_id=r.patient_id,
            type=r.reading_type,
            measured_at=with_offset(r.measured_at, r.measured_offset_min),
            received_at=r.received_at,
            unassigned=r.unassigned,
            irregular_heartbeat=r.irregular_heartbeat,
            meal_context=r.meal_context,
            triaged=r.triaged_at is not None,
            measurements=measurements,
        )


class QuarantineOut(BaseModel):
    id: str
    gateway_id: str | None
    source: ReadingSource
    reason: QuarantineReason
    status: QuarantineStatus
    errors: list[dict[str, Any]]
    gateway_reading_id: str | None
    content_type: str | None
    size: int
    received_at: datetime
    reviewed_at: datetime | None
    reviewed_by: str | None
    review_note: str | None
    reading_id: str | None

    @classmethod
    def fields_of(cls, q: QuarantinedPayload) -> dict[str, Any]:
        return {
            "id": q.id,
            "gateway_id": q.gateway_id,
            "source": q.source,
            "reason": q.reason,
            "status": q.status,
            "errors": q.errors,
            "gateway_reading_id": q.gateway_reading_id,
            "content_type": q.content_type,
            "size": len(q.raw_body),
            "received_at": q.received_at,
            "reviewed_at": q.reviewed_at,
            "reviewed_by": q.reviewed_by,
            "review_note": q.review_note,
            "reading_id": q.reading_id,
        }

    @classmethod
    def of(cls, q: QuarantinedPayload) -> QuarantineOut:
        return cls(**cls.fields_of(q))


class QuarantineDetailOut(QuarantineOut):
    raw_body: str
    raw_body_encoding: Literal["utf-8", "base64"]

    @classmethod
    def detail(cls, q: QuarantinedPayload) -> QuarantineDetailOut:
        try:
            text, enc = q.raw_body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, enc = base64.b64encode(q.raw_body).decode(), "base64"
        return cls(**cls.fields_of(q), raw_body=text, raw_body_encoding=enc)


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=1000)
