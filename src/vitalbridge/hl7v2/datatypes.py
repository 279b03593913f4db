"""Writing HL7 v2 primitive data types: DTM, DT and NM (HL7 v2.5.1 §2.A)."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal, InvalidOperation


def format_dtm(moment: datetime) -> str:
    """DTM to the second with its UTC offset, e.g. ``20240131083000-0500``.

    A naive datetime is refused: a reading's time without its offset is ambiguous by hours.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("HL7 timestamps need a timezone-aware datetime")
    return moment.strftime("%Y%m%d%H%M%S%z")


def format_date(day: date) -> str:
    return day.strftime("%Y%m%d")


def format_number(value: Decimal | int | float | str) -> str:
    """NM: optional sign, digits, optional decimal point — no exponent, no NaN or infinity."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numeric values must be finite")
        value = repr(value)
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ValueError("not a number") from None
    if not number.is_finite():
        raise ValueError("numeric values must be finite")
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".") or "0"
    return "0" if text in ("-0", "") else text
