"""HTTP header values the EHR client interprets (RFC 9110)."""

from __future__ import annotations

import email.utils
import time

DEFAULT_RETRY_AFTER_S = 1.0
# A Retry-After past this is treated as a misconfiguration rather than obeyed for hours.
MAX_RETRY_AFTER_S = 3600.0


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
