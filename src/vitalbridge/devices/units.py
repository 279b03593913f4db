"""Unit normalisation to the UCUM units of SPEC §5.

Gateways spell units as their firmware likes ("mmHg", "lbs", "mg/dl"); the hub stores and sends
one UCUM unit per quantity and keeps what the device reported when it had to convert, so a
chart reviewer can always see the original number.
"""

from __future__ import annotations

from dataclasses import dataclass

from vitalbridge.fhir.codes import Ucum

# Exact by definition (International Yard and Pound Agreement, 1959).
KG_PER_LB = 0.45359237
# Glucose molar mass 180.156 g/mol: 1 mmol/L = 18.0156 mg/dL.
MG_DL_PER_MMOL_L = 18.0156

# Spellings seen from device firmware, mapped to UCUM. Lookup is case-insensitive except where
# case carries meaning in UCUM (it does not for any of these).
_SPELLINGS: dict[str, Ucum] = {
    "mm[hg]": Ucum.mm_hg,
    "mmhg": Ucum.mm_hg,
    "/min": Ucum.per_minute,
    "bpm": Ucum.per_minute,
    "beats/min": Ucum.per_minute,
    "{beats}/min": Ucum.per_minute,
    "%": Ucum.percent,
    "kg": Ucum.kilogram,
    "kgs": Ucum.kilogram,
    "[lb_av]": Ucum.pound,
    "lb": Ucum.pound,
    "lbs": Ucum.pound,
    "mg/dl": Ucum.mg_per_dl,
    "mmol/l": Ucum.mmol_per_l,
}

# For each reported quantity: the unit the hub stores, and the units it accepts.
TARGET_UNIT: dict[str, Ucum] = {
    "systolic": Ucum.mm_hg,
    "diastolic": Ucum.mm_hg,
    "pulse": Ucum.per_minute,
    "spo2": Ucum.percent,
    "weight": Ucum.kilogram,
    "glucose": Ucum.mg_per_dl,
}
ACCEPTED_UNITS: dict[str, frozenset[Ucum]] = {
    "systolic": frozenset({Ucum.mm_hg}),
    "diastolic": frozenset({Ucum.mm_hg}),
    "pulse": frozenset({Ucum.per_minute}),
    "spo2": frozenset({Ucum.percent}),
    "weight": frozenset({Ucum.kilogram, Ucum.pound}),
    "glucose": frozenset({Ucum.mg_per_dl, Ucum.mmol_per_l}),
}


class UnitError(ValueError):
    """The unit is unknown or does not fit the quantity; the message names what is accepted."""


@dataclass(frozen=True)
class Converted:
    value: float
    unit: Ucum
    original_value: float | None = None  # set only when a conversion happened
    original_unit: Ucum | None = None


def parse_unit(text: str) -> Ucum:
    unit = _SPELLINGS.get(text.strip().lower())
    if unit is None:
        # The text is not repeated: error messages travel back to the gateway and into logs.
        raise UnitError("unknown unit")
    return unit


def normalise(quantity: str, value: float, unit_text: str) -> Converted:
    """Convert ``value`` in ``unit_text`` to the hub's unit for ``quantity``."""
    accepted = ACCEPTED_UNITS[quantity]
    names = " or ".join(sorted(u.display for u in accepted))
    try:
        unit = parse_unit(unit_text)
    except UnitError:
        raise UnitError(f"unknown unit for {quantity}; expected {names}") from None
    if unit not in accepted:
        raise UnitError(f"the unit does not fit {quantity}; expected {names}")
    target = TARGET_UNIT[quantity]
    if unit is target:
        return Converted(value, target)
    if unit is Ucum.pound:
        # 10 g resolution: finer than any home scale, coarse enough not to invent precision.
        return Converted(round(value * KG_PER_LB, 2), target, value, unit)
    if unit is Ucum.mmol_per_l:
        return Converted(round(value * MG_DL_PER_MMOL_L, 1), target, value, unit)
    raise UnitError(f"no conversion from {unit.value} to {target.value}")  # pragma: no cover - table complete
