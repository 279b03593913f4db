"""Tables of SPEC §5: gateways, devices and their assignment history, readings, measurements, quarantine.

PHI discipline: readings carry values and a device serial, never names. The quarantine keeps
raw bodies exactly as received (nothing received is lost) and is readable only by the owning
organization's integration and admin roles.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vitalbridge.db.base import Base, new_id, utcnow
from vitalbridge.db.types import UTCDateTime, str_enum
from vitalbridge.devices.gateways.base import GatewayKind
from vitalbridge.devices.readings import MealContext, MeasurementKind, ReadingOrigin, ReadingSource, ReadingType
from vitalbridge.fhir.codes import Ucum


class Gateway(Base):
    """A gateway account of one organization. Its id travels in ``X-Gateway-Id``; secrets are sealed."""

    __tablename__ = "gateways"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    kind: Mapped[GatewayKind] = mapped_column(str_enum(GatewayKind))
    name: Mapped[str] = mapped_column(String(200), default="")
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # During a rotation the old secret stays valid until ``finish-rotation``.
    previous_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    rotation_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Tells the operator whether the gateway still signs with the old secret.
    previous_secret_last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    api_base_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    api_key_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # End of the last completed batch-sync window: the default start of the next one.
    synced_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Device(Base):
    """A device serial (or IMEI) of one organization and the patient it is attributed to now.

    Readings measured at or after ``period_start`` belong to ``patient_id`` (None: held as
    unassigned); earlier ones are looked up in ``device_assignments`` (docs/devices.md).
    """

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("organization_id", "serial", name="uq_devices_org_serial"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    serial: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(100), nullable=True)
    manufacturer: Mapped[str | None] = mapped_column(String(100), nullable=True)
    patient_id: Mapped[str | None] = mapped_column(
        ForeignKey("patients.id", ondelete="SET NULL"), nullable=True, index=True
    )
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeviceAssignment(Base):
    """A closed attribution period: readings measured in ``[starts_at, ends_at)`` belong to ``patient_id``."""

    __tablename__ = "device_assignments"
    __table_args__ = (Index("ix_device_assignments_device_ends", "device_id", "ends_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"), nullable=True)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # None: since first seen
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Reading(Base):
    """One gateway reading (the idempotency unit): unique per gateway and gateway reading id."""

    __tablename__ = "readings"
    __table_args__ = (
        UniqueConstraint("gateway_id", "gateway_reading_id", name="uq_readings_gateway_reading"),
        Index("ix_readings_patient_measured", "patient_id", "measured_at"),
        Index("ix_readings_device_patient", "device_id", "patient_id"),
        Index("ix_readings_org_received", "organization_id", "received_at"),
        Index("ix_readings_triaged_at", "triaged_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id", ondelete="CASCADE"))
    gateway_reading_id: Mapped[str] = mapped_column(String(128))
    source: Mapped[ReadingSource] = mapped_column(str_enum(ReadingSource, 16))
    # Device-transmitted or manually entered: only the former counts for billing (SPEC §13).
    origin: Mapped[ReadingOrigin] = mapped_column(
        str_enum(ReadingOrigin, 16), default=ReadingOrigin.device, server_default=ReadingOrigin.device.value
    )
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"), nullable=True)
    reading_type: Mapped[ReadingType] = mapped_column(str_enum(ReadingType))
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The device's UTC offset in minutes: the Observation's effectiveDateTime keeps local time.
    measured_offset_min: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    unassigned: Mapped[bool] = mapped_column(Boolean, default=False)
    irregular_heartbeat: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    meal_context: Mapped[MealContext | None] = mapped_column(str_enum(MealContext, 16), nullable=True)
    # Set once triage rules ran for this reading; None = still to do (sweeper picks it up).
    triaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Measurement(Base):
    """One normalised measurement; one FHIR Observation and one outbox row each."""

    __tablename__ = "measurements"
    __table_args__ = (Index("ix_measurements_patient_kind_measured", "patient_id", "kind", "measured_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    reading_id: Mapped[str] = mapped_column(ForeignKey("readings.id", ondelete="CASCADE"), index=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # Copied from the reading so trend and history queries need no join.
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"), nullable=True)
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[MeasurementKind] = mapped_column(str_enum(MeasurementKind))
    unit: Mapped[Ucum] = mapped_column(str_enum(Ucum, 16))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    systolic: Mapped[float | None] = mapped_column(Float, nullable=True)
    diastolic: Mapped[float | None] = mapped_column(Float, nullable=True)
    original_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    original_unit: Mapped[Ucum | None] = mapped_column(str_enum(Ucum, 16), nullable=True)


class QuarantineReason(enum.StrEnum):
    malformed = "malformed"  # not JSON, or JSON of the wrong shape
    invalid = "invalid"  # missing or ill-typed fields, naive timestamp, unknown unit
    implausible = "implausible"  # physiologically impossible value or time
    invalid_fhir = "invalid_fhir"  # the Observation built from it failed validation (a hub defect)
    conflict = "conflict"  # a reading id already received with different content (the first is kept)


class QuarantineStatus(enum.StrEnum):
    open = "open"  # awaiting review
    reprocessed = "reprocessed"  # accepted on a later attempt (see reading_id)
    dismissed = "dismissed"  # reviewed and set aside


class QuarantinedPayload(Base):
    """An authenticated payload the hub could not accept, kept byte for byte for review."""

    __tablename__ = "quarantine"
    __table_args__ = (Index("ix_quarantine_org_status_received", "organization_id", "status", "received_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    gateway_id: Mapped[str | None] = mapped_column(ForeignKey("gateways.id", ondelete="SET NULL"), nullable=True)
    source: Mapped[ReadingSource] = mapped_column(str_enum(ReadingSource, 16))
    reason: Mapped[QuarantineReason] = mapped_column(str_enum(QuarantineReason))
    raw_body: Mapped[bytes] = mapped_column(LargeBinary)
    content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    gateway_reading_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[QuarantineStatus] = mapped_column(str_enum(QuarantineStatus, 16), default=QuarantineStatus.open)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    review_note: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    reading_id: Mapped[str | None] = mapped_column(ForeignKey("readings.id", ondelete="SET NULL"), nullable=True)
