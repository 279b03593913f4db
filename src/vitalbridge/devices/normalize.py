"""From what a gateway reported to what the hub stores (SPEC §5): units, then plausibility.

Adapter-independent: every gateway's readings pass through ``normalise_reading`` so the same
number is refused or accepted whichever gateway carried it.
"""

from __future__ import annotations

from datetime import datetime

from vitalbridge.devices import plausibility
from vitalbridge.devices.readings import (
    GatewayReading,
    Loc,
    Measurement,
    MeasurementKind,
    NormalizedReading,
    ReadingType,
)
from vitalbridge.devices.units import Converted, UnitError, normalise
from vitalbridge.errors import FieldError

# Which reported quantities each reading type must and may carry.
REQUIRED: dict[ReadingType, tuple[str, ...]] = {
    ReadingType.blood_pressure: ("systolic", "diastolic"),
    ReadingType.pulse_oximetry: ("spo2",),
    ReadingType.weight: ("weight",),
    ReadingType.glucose: ("glucose",),
}
OPTIONAL: dict[ReadingType, tuple[str, ...]] = {
    ReadingType.blood_pressure: ("pulse",),
    ReadingType.pulse_oximetry: ("pulse",),
    ReadingType.weight: (),
    ReadingType.glucose: (),
}


def normalise_reading(reading: GatewayReading, now: datetime) -> NormalizedReading | list[FieldError]:
    errors: list[FieldError] = []
    converted: dict[str, Converted] = {}
    locs: dict[str, Loc] = {}
    for name, reported in reading.values.items():
        locs[name] = reported.loc
        try:
            conv = normalise(name, reported.value, reported.unit)
        except UnitError as exc:
            errors.append(FieldError(reported.unit_loc or reported.loc, str(exc), "value_error.unit"))
            continue
        problem = plausibility.check_value(name, conv.value, conv.unit.value, reported.loc)
        if problem is not None:
            errors.append(problem)
            continue
        converted[name] = conv
    when = plausibility.check_measured_at(reading.measured_at, now, (*reading.loc, "measured_at"))
    if when is not None:
        errors.append(when)
    if errors:
        return _unique(errors)

    measurements = _measurements(reading.reading_type, converted)
    for m in measurements:
        errors.extend(plausibility.check_measurement(m, locs))
    if errors:
        return errors
    return NormalizedReading(reading, measurements)


def _unique(errors: list[FieldError]) -> list[FieldError]:
    # Two pressures share one unit field: one bad unit is one error, not two.
    seen: dict[tuple[object, ...], FieldError] = {}
    for e in errors:
        seen.setdefault((e.loc, e.type), e)
    return list(seen.values())


def _single(kind: MeasurementKind, c: Converted) -> Measurement:
    return Measurement(
        kind=kind, unit=c.unit, value=c.value, original_value=c.original_value, original_unit=c.original_unit
    )


def _measurements(reading_type: ReadingType, c: dict[str, Converted]) -> list[Measurement]:
    out: list[Measurement] = []
    if reading_type is ReadingType.blood_pressure:
        out.append(
            Measurement(
                kind=MeasurementKind.blood_pressure,
                unit=c["systolic"].unit,
                systolic=c["systolic"].value,
                diastolic=c["diastolic"].value,
            )
        )
    elif reading_type is ReadingType.pulse_oximetry:
        out.append(_single(MeasurementKind.oxygen_saturation, c["spo2"]))
    elif reading_type is ReadingType.weight:
        out.append(_single(MeasurementKind.body_weight, c["weight"]))
    elif reading_type is ReadingType.glucose:
        out.append(_single(MeasurementKind.blood_glucose, c["glucose"]))
    if "pulse" in c:
        # SPEC §7: the pulse of a cuff or oximeter is its own heart-rate Observation.
        out.append(_single(MeasurementKind.heart_rate, c["pulse"]))
    return out
