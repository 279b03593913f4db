"""HTTP header values the EHR client interprets (RFC 9110)."""

from __future__ import annotations

import email.utils
import math
import time

DEFAULT_RETRY_AFTER_S = 1.0
# A Retry-After past this is treated as a misconfiguration rather than obeyed for hours.
MAX_RETRY_AFTER_S = 3600.0
WINDOW_S = 60.0
# eCW resets its counter at the top of each minute by its own clock. Sending nothing in the first
# and last second of the hub's minute keeps clock skew and transit time from moving a call into
# the EHR's neighbouring minute (NTP keeps servers well within that).
WINDOW_GUARD_S = 1.0


def next_window_start(now: float) -> float:
    """When the hub may call a minute-window EHR again after the current minute is used up."""
    return (math.floor(now / WINDOW_S) + 1) * WINDOW_S + WINDOW_GUARD_S


def parse_retry_after(value: str | None, *, now: float | None = None) -> float:
    """Seconds to wait from ``Retry-After`` (delay-seconds or an HTTP-date, RFC 9110 §10.2.3)."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER_S
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return DEFAULT_RETRY_AFTER_S
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def rate_limit_wait(value: str | None, *, now: float | None = None) -> tuple[float, bool]:
    """How long a 429 asks us to wait, and whether it is a fixed-minute refusal.

    eCW sends no Retry-After and blocks the app until its per-minute counter resets at the top of
    the minute (field notes Q5), so a 429 without the header means "until the next minute starts",
    not a fixed back-off.
    """
    if value:
        return parse_retry_after(value, now=now), False
    current = time.time() if now is None else now
    return next_window_start(current) - current, True
