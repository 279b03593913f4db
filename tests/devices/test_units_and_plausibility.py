"""Units normalise to SPEC §5 UCUM and keep the original; impossible values are refused with a field error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vitalbridge.devices.normalize import normalise_reading
from vitalbridge.devices.readings import (
    DeviceRef,
    GatewayReading,
    Measurement,
    MeasurementKind,
    ReadingType,
    ReportedValue,
)
from vitalbridge.devices.units import UnitError, normalise
from vitalbridge.fhir.codes import Ucum

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_pounds_become_kilograms_and_the_original_is_kept() -> None:
    c = normalise("weight", 182.4, "lb")
    assert (c.value, c.unit) == (82.74, Ucum.kilogram)  # 182.4 x 0.45359237 = 82.735…
    assert (c.original_value, c.original_unit) == (182.4, Ucum.pound)
    assert normalise("weight", 182.4, "[lb_av]").original_unit is Ucum.pound


def test_mmol_per_litre_become_mg_per_dl_and_the_original_is_kept() -> None:
    c = normalise("glucose", 5.6, "mmol/L")
    assert (c.value, c.unit) == (100.9, Ucum.mg_per_dl)  # 5.6 x 18.0156 = 100.887
    assert (c.original_value, c.original_unit) == (5.6, Ucum.mmol_per_l)


def test_units_already_in_ucum_are_not_marked_converted() -> None:
    for quantity, value, unit, target in [
        ("weight", 80.0, "kg", Ucum.kilogram),
        ("glucose", 99, "mg/dl", Ucum.mg_per_dl),
        ("systolic", 120, "mmHg", Ucum.mm_hg),
        ("pulse", 60, "bpm", Ucum.per_minute),
    ]:
        c = normalise(quantity, value, unit)
        assert (c.value, c.unit, c.original_value, c.original_unit) == (value, target, None, None)


@pytest.mark.parametrize(
    ("quantity", "unit", "fragment"),
    [
        ("weight", "stone", "unknown unit for weight"),
        ("weight", "mg/dL", "does not fit weight"),
        ("glucose", "kg", "expected"),
    ],
)
def test_unknown_or_mismatched_units_are_refused(quantity: str, unit: str, fragment: str) -> None:
    with pytest.raises(UnitError, match=fragment):
        normalise(quantity, 1.0, unit)


def _reading(rtype: ReadingType, values: dict[str, tuple[float, str]], at: datetime = NOW) -> GatewayReading:
    return GatewayReading(
        gateway_reading_id="r",
        device=DeviceRef("d"),
        reading_type=rtype,
        measured_at=at,
        values={k: ReportedValue(v, u, ("body", "data", k), ("body", "data", "unit")) for k, (v, u) in values.items()},
    )


# Just inside and just outside each documented range (docs/readings.md, "Plausibility").
@pytest.mark.parametrize(
    ("rtype", "field", "unit", "ok", "bad"),
    [
        (ReadingType.weight, "weight", "kg", 0.5, 0.49),
        (ReadingType.weight, "weight", "kg", 500, 500.1),
        (ReadingType.pulse_oximetry, "spo2", "%", 50, 49.9),
        (ReadingType.pulse_oximetry, "spo2", "%", 100, 100.1),
        (ReadingType.glucose, "glucose", "mg/dL", 10, 9.9),
        (ReadingType.glucose, "glucose", "mg/dL", 1000, 1000.5),
        (ReadingType.pulse_oximetry, "pulse", "/min", 20, 19),
        (ReadingType.pulse_oximetry, "pulse", "/min", 300, 301),
    ],
)
def test_plausibility_ranges(rtype: ReadingType, field: str, unit: str, ok: float, bad: float) -> None:
    base = {"spo2": (97.0, "%")} if rtype is ReadingType.pulse_oximetry else {}
    good = normalise_reading(_reading(rtype, {**base, field: (ok, unit)}), NOW)
    assert not isinstance(good, list), good
    refused = normalise_reading(_reading(rtype, {**base, field: (bad, unit)}), NOW)
    assert isinstance(refused, list)
    assert [(e.loc, e.type) for e in refused] == [(("body", "data", field), "value_error.implausible")]
    assert str(bad) not in refused[0].msg  # values are not echoed into error texts


def test_plausibility_is_checked_after_conversion() -> None:
    # 1200 lb is 544 kg: refused although 1200 is a fine number of pounds for nothing human.
    refused = normalise_reading(_reading(ReadingType.weight, {"weight": (1200, "lb")}), NOW)
    assert isinstance(refused, list)
    assert refused[0].loc == ("body", "data", "weight")
    # 40 mmol/L is 720.6 mg/dL: plausible (severe hyperglycaemia), converted and kept.
    ok = normalise_reading(_reading(ReadingType.glucose, {"glucose": (40, "mmol/L")}), NOW)
    assert not isinstance(ok, list)
    assert ok.measurements[0].value == 720.6


def test_blood_pressure_rules() -> None:
    def bp(s: float, d: float, p: float | None = None) -> object:
        values = {"systolic": (s, "mmHg"), "diastolic": (d, "mmHg")}
        if p is not None:
            values["pulse"] = (p, "/min")
        return normalise_reading(_reading(ReadingType.blood_pressure, values), NOW)

    ok = bp(120, 80, 64)
    assert not isinstance(ok, list)
    assert ok.measurements == [
        Measurement(MeasurementKind.blood_pressure, Ucum.mm_hg, systolic=120, diastolic=80),
        Measurement(MeasurementKind.heart_rate, Ucum.per_minute, value=64),
    ]
    swapped = bp(80, 120)
    assert isinstance(swapped, list)
    assert [(e.loc, e.msg) for e in swapped] == [
        (("body", "data", "diastolic"), "diastolic must be lower than systolic")
    ]
    assert isinstance(bp(39, 30), list)
    assert isinstance(bp(301, 100), list)
    assert isinstance(bp(120, 19), list)
    assert isinstance(bp(120, 80, 301), list)
    # A bad unit on the pressures is one error on the unit field, not one per pressure.
    bad_unit = normalise_reading(
        _reading(ReadingType.blood_pressure, {"systolic": (120, "kPa"), "diastolic": (80, "kPa")}), NOW
    )
    assert isinstance(bad_unit, list)
    assert [(e.loc, e.type) for e in bad_unit] == [(("body", "data", "unit"), "value_error.unit")]


def test_measured_at_far_future_and_epoch_are_refused() -> None:
    near = normalise_reading(_reading(ReadingType.weight, {"weight": (80, "kg")}, NOW + timedelta(minutes=9)), NOW)
    assert not isinstance(near, list)  # device clocks drift a little
    far = normalise_reading(_reading(ReadingType.weight, {"weight": (80, "kg")}, NOW + timedelta(hours=2)), NOW)
    assert isinstance(far, list)
    assert [(e.loc, e.type) for e in far] == [(("body", "measured_at"), "value_error.future")]
    epoch = normalise_reading(
        _reading(ReadingType.weight, {"weight": (80, "kg")}, datetime(1970, 1, 1, tzinfo=UTC)), NOW
    )
    assert isinstance(epoch, list)
    assert epoch[0].type == "value_error.past"
