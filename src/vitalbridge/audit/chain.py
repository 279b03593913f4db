"""Canonical form and hashing of audit entries.

``entry_hash = SHA-256(prev_hash || canonical_json(entry without hashes))``. The canonical form
is sorted-key compact JSON with timestamps in ISO 8601 UTC at microsecond precision, so the same
row hashes identically on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64


def canonical(fields: dict[str, Any]) -> bytes:
    def default(value: object) -> str:
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        raise TypeError(f"audit field of type {type(value).__name__} is not serialisable")

    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=default, ensure_ascii=True).encode()


def entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(fields)).hexdigest()


HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "actor",
    "organization_id",
    "practice_id",
    "action",
    "resource_type",
    "resource_ids",
    "outcome",
    "status_code",
    "latency_ms",
    "correlation_id",
    "detail",
)


def fields_of(row: Any) -> dict[str, Any]:
    """The hashed fields of an AuditEntry (or any object with those attributes)."""
    return {name: getattr(row, name) for name in HASHED_FIELDS}
