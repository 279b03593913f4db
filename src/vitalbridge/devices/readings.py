"""The vocabulary of readings, shared by adapters, ingest, triage and the FHIR transform (SPEC §5).

A *reading* is what a gateway reports once (one gateway reading id); it yields one or more
*measurements*, each of which becomes exactly one FHIR Observation. A cuff's reading is a
blood-pressure measurement plus, when the cuff reports it, a heart-rate measurement.

These types are plain dataclasses: adapters produce them from bytes without a database or a
web framework, so each adapter is testable with bytes in, objects out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from vitalbridge.fhir.codes import Ucum


class ReadingType(enum.StrEnum):
    """What kind of device took the reading."""

    blood_pressure = "blood_pressure"  # cuff: systolic, diastolic, optional pulse
    pulse_oximetry = "pulse_oximetry"  # oximeter: SpO2, optional pulse
    weight = "weight"  # scale
    glucose = "glucose"  # glucometer


class MeasurementKind(enum.StrEnum):
    """One Observation each."""

    blood_pressure = "blood_pressure"  # 85354-9 panel: systolic + diastolic components
    heart_rate = "heart_rate"  # 8867-4
    oxygen_saturation = "oxygen_saturation"  # 59408-5 + 2708-6
    body_weight = "body_weight"  # 29463-7
    blood_glucose = "blood_glucose"  # 2339-0 (or 41653-7)


class MealContext(enum.StrEnum):
    """Glucose meal marker as reported by the meter."""

    before_meal = "before_meal"
    after_meal = "after_meal"
    fasting = "fasting"
    random = "random"


class ReadingOrigin(enum.StrEnum):
    """How the value was captured (SPEC §5 provenance). Only device-transmitted readings count
    toward the device-supply billing codes (SPEC §13)."""

    device = "device"  # measured and transmitted by the device itself
    manual = "manual"  # typed in or self-reported (e.g. Withings ``attrib`` 2/4, iHealth ``Manual``)


class ReadingSource(enum.StrEnum):
    webhook = "webhook"  # pushed by the gateway
    sync = "sync"  # pulled from the gateway's REST API to fill gaps


Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ReportedValue:
    """A number as the gateway sent it, with the unit it named and where it was in the payload."""

    value: float
    unit: str
    loc: Loc
    unit_loc: Loc | None = None  # where the unit was named, when the payload names it


@dataclass(frozen=True)
class DeviceRef:
    """The device as the gateway identifies it (IMEI or serial)."""

    serial: str
    model: str | None = None
    manufacturer: str | None = None


@dataclass(frozen=True)
class GatewayReading:
    """One reading as an adapter understood it: units still as sent, nothing checked yet."""

    gateway_reading_id: str
    device: DeviceRef
    reading_type: ReadingType
    measured_at: datetime  # always timezone-aware; adapters refuse naive times
    values: dict[str, ReportedValue]  # keys: systolic, diastolic, pulse, spo2, weight, glucose
    irregular_heartbeat: bool | None = None
    meal_context: MealContext | None = None
    origin: ReadingOrigin = ReadingOrigin.device
    loc: Loc = ("body",)  # where this reading sits in the payload (batch items differ)

    @property
    def offset_minutes(self) -> int:
        offset = self.measured_at.utcoffset() or timedelta(0)
        return int(offset.total_seconds() // 60)


@dataclass(frozen=True)
class Measurement:
    """A normalised measurement: UCUM unit, plausible value, original kept when converted."""

    kind: MeasurementKind
    unit: Ucum
    value: float | None = None  # single-valued kinds
    systolic: float | None = None  # blood_pressure only
    diastolic: float | None = None  # blood_pressure only
    original_value: float | None = None  # as sent, when a unit conversion happened
    original_unit: Ucum | None = None


@dataclass(frozen=True)
class NormalizedReading:
    """A reading that passed units and plausibility: ready to store and transform."""

    source: GatewayReading
    measurements: list[Measurement] = field(default_factory=list)


def with_offset(utc_value: datetime, offset_minutes: int) -> datetime:
    """Give a stored UTC instant back its original offset (the patient's local time)."""
    return utc_value.astimezone(timezone(timedelta(minutes=offset_minutes)))
