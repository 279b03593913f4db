"""The audit chain links each entry to the previous one on both backends."""

from __future__ import annotations

from sqlalchemy import select

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.audit.chain import GENESIS_HASH, entry_hash, fields_of
from vitalbridge.audit.models import AuditEntry
from vitalbridge.runtime import Hub


def test_entries_chain_across_transactions(hub: Hub) -> None:
    for i in range(3):
        with hub.sessions() as session, session.begin():
            record(
                session,
                action="ehr.call",
                outcome=Outcome.success,
                actor=Actor.service("worker"),
                resource_type="Observation",
                resource_ids=[f"obs-{i}"],
                status_code=201,
                latency_ms=12.3456,
                detail={"method": "POST", "attempt": i},
            )
            record(session, action="webhook.received", outcome="success", actor="gateway:g1")
    with hub.sessions() as session:
        rows = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
    assert [r.seq for r in rows] == list(range(1, 7))
    prev = GENESIS_HASH
    for row in rows:
        assert row.prev_hash == prev
        # Recomputed from what the database gives back: the canonical form survives a round trip.
        assert row.entry_hash == entry_hash(prev, fields_of(row))
        prev = row.entry_hash


def test_rolled_back_entries_leave_no_gap(hub: Hub) -> None:
    with hub.sessions() as session, session.begin():
        record(session, action="a", outcome="success", actor="service:x")
    try:
        with hub.sessions() as session, session.begin():
            record(session, action="b", outcome="success", actor="service:x")
            raise RuntimeError("caller failed")
    except RuntimeError:
        pass
    with hub.sessions() as session, session.begin():
        record(session, action="c", outcome="success", actor="service:x")
    with hub.sessions() as session:
        assert [(r.seq, r.action) for r in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))] == [
            (1, "a"),
            (2, "c"),
        ]
