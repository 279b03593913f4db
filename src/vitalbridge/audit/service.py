"""``record``: the one way to write the audit trail.

It runs inside the caller's transaction, so a reading, its outbox row and its audit entry commit
(or roll back) together, and several entries in one transaction cost one lock. The chain needs a
total order: on PostgreSQL a transaction-scoped advisory lock serialises writers; on SQLite the
hub's ``BEGIN IMMEDIATE`` already does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from vitalbridge.audit.chain import GENESIS_HASH, entry_hash, fields_of
from vitalbridge.audit.models import AuditEntry
from vitalbridge.db.base import utcnow

# Arbitrary constant naming the audit chain's advisory lock.
_CHAIN_LOCK_KEY = 0x7661_7564  # "vaud"


class Outcome(enum.StrEnum):
    success = "success"
    failure = "failure"  # the other side refused or failed
    error = "error"  # we failed
    denied = "denied"  # access control refused the action


@dataclass(frozen=True)
class Actor:
    """Who acted: ``user:<id>``, ``token:<id>``, ``service:<name>`` or ``gateway:<id>``."""

    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @classmethod
    def service(cls, name: str) -> Actor:
        return cls("service", name)


def lock_chain(session: Session) -> None:
    """Serialise writers of the chain until the transaction ends (a no-op on SQLite, which
    already holds its write lock from ``BEGIN IMMEDIATE``)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK_KEY})


def record(
    session: Session,
    *,
    action: str,
    outcome: Outcome | str,
    actor: Actor | str,
    organization_id: str | None = None,
    practice_id: str | None = None,
    resource_type: str | None = None,
    resource_ids: list[str] | tuple[str, ...] = (),
    status_code: int | None = None,
    latency_ms: float | None = None,
    correlation_id: str | None = None,
    detail: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> AuditEntry:
    """Append one entry to the chain. ``detail`` holds codes and ids only, never PHI values."""
    lock_chain(session)
    session.flush()  # earlier entries of this transaction must be visible to the tail query
    tail = session.execute(
        select(AuditEntry.seq, AuditEntry.entry_hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    prev_seq, prev_hash = (tail[0], tail[1]) if tail else (0, GENESIS_HASH)
    row = AuditEntry(
        seq=prev_seq + 1,
        occurred_at=occurred_at or utcnow(),
        actor=str(actor),
        organization_id=organization_id,
        practice_id=practice_id,
        action=action,
        resource_type=resource_type,
        resource_ids=[str(r) for r in resource_ids],
        outcome=str(outcome),
        status_code=status_code,
        latency_ms=round(latency_ms, 3) if latency_ms is not None else None,
        correlation_id=correlation_id,
        detail=dict(detail or {}),
        prev_hash=prev_hash,
        entry_hash="",
    )
    row.entry_hash = entry_hash(prev_hash, fields_of(row))
    session.add(row)
    session.flush()
    return row
