"""Webhook signatures (SPEC §5): HMAC-SHA256 over ``timestamp + "." + raw body``, hex.

Binding the timestamp into the MAC is what makes the freshness check meaningful: an attacker
who replays a captured request cannot move it into the acceptance window without the secret.
Inside the window a replay is harmless because the gateway reading id makes it a no-op.
Framework-free: used by the webhook route, the gateway simulator and the tests alike.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Iterable

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
GATEWAY_HEADER = "X-Gateway-Id"
# SPEC §5: older (or newer) than five minutes is a replay or a broken clock.
DEFAULT_MAX_SKEW_S = 300


class SignatureProblem(enum.StrEnum):
    """Why a webhook was refused; recorded in the audit trail, never sent back in detail."""

    missing_headers = "missing_headers"
    unknown_gateway = "unknown_gateway"
    bad_timestamp = "bad_timestamp"
    stale_timestamp = "stale_timestamp"
    future_timestamp = "future_timestamp"
    bad_signature = "bad_signature"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_matches(secrets: Iterable[str], timestamp: str, body: bytes, signature: str) -> int | None:
    """Index of the secret that produced ``signature``, or None. Every candidate is checked in constant time."""
    given = signature.strip().lower().encode()
    match: int | None = None
    for i, secret in enumerate(secrets):
        # compare_digest on every candidate (no early exit) so timing does not reveal which one matched.
        if hmac.compare_digest(sign(secret, timestamp, body).encode(), given) and match is None:
            match = i
    return match


def check_timestamp(timestamp: str, now: float, max_skew_s: int = DEFAULT_MAX_SKEW_S) -> SignatureProblem | None:
    try:
        ts = int(timestamp.strip())
    except ValueError:
        return SignatureProblem.bad_timestamp
    if ts < now - max_skew_s:
        return SignatureProblem.stale_timestamp
    if ts > now + max_skew_s:
        return SignatureProblem.future_timestamp
    return None
