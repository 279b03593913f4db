"""Physiological plausibility (SPEC §5): refuse what no living patient at home can measure.

These limits are not clinical thresholds (those are triage rules, per program and patient);
they catch a cuff that reported a sensor error as 0, a scale read in grams, a meter whose unit
setting was misreported. A refused reading goes to quarantine with a field error, never into
the chart. Each range is wider than the extremes reported in the literature so a real but
extreme value (which triage must see) is never refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from vitalbridge.devices.readings import Loc, Measurement, MeasurementKind
from vitalbridge.errors import FieldError


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    why: str


# Systolic 40: below this the oscillometric cuffs used at home cannot detect a pressure at all
# (manufacturers specify 60-260/280); 300 is above the highest pressures recorded in
# hypertensive emergencies (~280).
SYSTOLIC = Range(40, 300, "oscillometric cuffs measure roughly 60-280 mmHg")
# Diastolic 20-200: cuff measurement ranges are ~30-200 mmHg.
DIASTOLIC = Range(20, 200, "cuffs measure roughly 30-200 mmHg")
# Pulse 20-300: profound bradycardia rarely below 25/min in a conscious patient; device
# specifications stop at 240-250/min; 300 covers atrial flutter with 1:1 conduction.
PULSE = Range(20, 300, "home devices report 30-250 beats/min")
# SpO2 50-100: a saturation above 100 % is impossible; finger oximeters are only specified
# down to 70 % and read unreliably below 50 %.
SPO2 = Range(50, 100, "oximeters are accurate only between 70 and 100 %")
# Weight 0.5-500 kg: a newborn weighs more than 0.5 kg; home scales stop at 180-300 kg.
WEIGHT = Range(0.5, 500, "home scales weigh up to about 300 kg")
# Glucose 10-1000 mg/dL: meters display LO below ~20 and HI above ~600 mg/dL; 1000 still
# leaves room for hyperosmolar states (reported up to ~2000 only in hospital labs).
GLUCOSE = Range(10, 1000, "meters read between about 20 and 600 mg/dL")

RANGES: dict[str, Range] = {
    "systolic": SYSTOLIC,
    "diastolic": DIASTOLIC,
    "pulse": PULSE,
    "spo2": SPO2,
    "weight": WEIGHT,
    "glucose": GLUCOSE,
}

# Device clocks drift and gateways stamp late; a few minutes ahead of the hub is normal,
# an hour is a misconfigured clock whose readings would sort wrongly in the chart.
MAX_FUTURE = timedelta(minutes=10)
# Nothing measured before this is a home RPM reading; it is a device clock reset to its epoch.
EARLIEST = datetime.fromisoformat("2000-01-01T00:00:00+00:00")


def check_value(quantity: str, value: float, unit: str, loc: Loc) -> FieldError | None:
    rng = RANGES[quantity]
    if not rng.low <= value <= rng.high:
        return FieldError(
            loc,
            # The value itself is not repeated: error texts travel to logs and other systems.
            f"implausible {quantity}: accepted {rng.low:g}-{rng.high:g} {unit} ({rng.why})",
            "value_error.implausible",
        )
    return None


def check_measurement(m: Measurement, locs: dict[str, Loc]) -> list[FieldError]:
    """Cross-field rules that single ranges cannot express."""
    if m.kind is not MeasurementKind.blood_pressure or m.systolic is None or m.diastolic is None:
        return []
    # The diastolic pressure is by definition the lower one: equal or higher means the fields
    # were swapped or the cuff misread.
    if m.diastolic >= m.systolic:
        return [
            FieldError(
                locs["diastolic"],
                "diastolic must be lower than systolic",
                "value_error.implausible",
            )
        ]
    return []


def check_measured_at(measured_at: datetime, now: datetime, loc: Loc) -> FieldError | None:
    if measured_at > now + MAX_FUTURE:
        return FieldError(
            loc,
            f"measured_at is more than {int(MAX_FUTURE.total_seconds() // 60)} minutes in the future "
            "(check the device or gateway clock)",
            "value_error.future",
        )
    if measured_at < EARLIEST:
        return FieldError(loc, "measured_at is before 2000-01-01 (device clock not set)", "value_error.past")
    return None
