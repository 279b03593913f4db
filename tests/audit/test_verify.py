"""``verify_chain`` finds edited, deleted, reordered and rewritten rows; the guards refuse edits."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.audit.tamper import raw_sql
from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.audit.chain import entry_hash, fields_of
from vitalbridge.audit.models import AuditEntry
from vitalbridge.audit.verify import BreakKind, verify_chain
from vitalbridge.runtime import Hub


def write_entries(hub: Hub, n: int = 6) -> None:
    for i in range(n):
        with hub.sessions() as session, session.begin():
            record(
                session,
                action="ehr.call" if i % 2 else "webhook.received",
                outcome=Outcome.success,
                actor=Actor.service("worker"),
                organization_id="org-1",
                resource_type="Observation",
                resource_ids=[f"obs-{i}"],
                status_code=201,
                latency_ms=1.5 * i,
                correlation_id=f"corr-{i}",
                detail={"attempt": i},
            )


def verify(hub: Hub) -> tuple[BreakKind | None, int | None]:
    with hub.sessions() as session:
        result = verify_chain(session, batch_size=2)  # small batches: paging is exercised
    return (result.broken.kind, result.broken.seq) if result.broken else (None, result.head_seq)


def test_intact_chain_verifies(hub: Hub) -> None:
    assert verify(hub) == (None, None)  # empty chain
    write_entries(hub)
    with hub.sessions() as session:
        result = verify_chain(session)
    assert result.ok
    assert (result.checked, result.first_seq, result.head_seq) == (6, 1, 6)
    assert result.head_hash is not None
    assert len(result.head_hash) == 64


def test_edited_row_is_found(hub: Hub) -> None:
    write_entries(hub)
    raw_sql(hub, "UPDATE audit_entries SET outcome = 'failure' WHERE seq = 3")
    assert verify(hub) == (BreakKind.edited, 3)


def test_deleted_row_is_found(hub: Hub) -> None:
    write_entries(hub)
    raw_sql(hub, "DELETE FROM audit_entries WHERE seq = 4")
    assert verify(hub) == (BreakKind.missing, 4)


def test_deleted_first_rows_are_found(hub: Hub) -> None:
    write_entries(hub)
    raw_sql(hub, "DELETE FROM audit_entries WHERE seq <= 2")
    assert verify(hub) == (BreakKind.missing, 1)


def test_reordered_rows_are_found(hub: Hub) -> None:
    write_entries(hub)
    raw_sql(
        hub,
        "UPDATE audit_entries SET seq = -2 WHERE seq = 2",
        "UPDATE audit_entries SET seq = 2 WHERE seq = 3",
        "UPDATE audit_entries SET seq = 3 WHERE seq = -2",
    )
    with hub.sessions() as session:
        broken = verify_chain(session).broken
    assert broken is not None
    assert (broken.kind, broken.seq) == (BreakKind.reordered, 2)
    assert "written as seq 3" in broken.message


def test_row_rewritten_with_a_fresh_hash_breaks_the_next_link(hub: Hub) -> None:
    write_entries(hub)
    with hub.sessions() as session:
        row = session.get(AuditEntry, 3)
        assert row is not None
        fields = fields_of(row)
    fields["outcome"] = "failure"
    forged = entry_hash(row.prev_hash, fields)
    raw_sql(hub, f"UPDATE audit_entries SET outcome = 'failure', entry_hash = '{forged}' WHERE seq = 3")
    assert verify(hub) == (BreakKind.relinked, 4)


def test_kept_anchor_detects_deleted_newest_rows(hub: Hub) -> None:
    write_entries(hub)
    with hub.sessions() as session:
        head = verify_chain(session)
        assert head.head_seq == 6
        assert head.head_hash
        assert verify_chain(session, anchor=(6, head.head_hash)).ok
    raw_sql(hub, "DELETE FROM audit_entries WHERE seq >= 5")
    with hub.sessions() as session:
        # Without the anchor a truncated tail is still a valid chain; with it, it is not.
        assert verify_chain(session).ok
        broken = verify_chain(session, anchor=(6, head.head_hash)).broken
    assert broken is not None
    assert broken.seq == 6


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entries SET outcome = 'failure' WHERE seq = 1",
        "DELETE FROM audit_entries WHERE seq = 1",
        "DELETE FROM audit_entries",
        "UPDATE audit_checkpoints SET anchor_hash = 'x'",
    ],
)
def test_guards_refuse_update_and_delete(hub: Hub, statement: str) -> None:
    write_entries(hub, 2)
    if "checkpoints" in statement:
        raw_sql(
            hub,
            "INSERT INTO audit_checkpoints (id, created_at, through_seq, anchor_hash, pruned_count, cutoff, "
            "record_seq, actor) VALUES ('cp', '2020-01-01 00:00:00', 0, 'a', 0, '2020-01-01 00:00:00', 1, 'x')",
        )
    with pytest.raises(DBAPIError, match="append-only"), hub.engine.begin() as conn:
        conn.execute(text(statement))
    with hub.sessions() as session:
        assert session.query(AuditEntry).count() == 2


def test_truncate_and_the_bare_prune_switch_are_refused(hub: Hub) -> None:
    write_entries(hub, 1)
    postgres = hub.engine.dialect.name == "postgresql"
    if postgres:
        with pytest.raises(DBAPIError, match="append-only"), hub.engine.begin() as conn:
            conn.execute(text("TRUNCATE audit_entries"))
    with hub.engine.begin() as conn:
        # The prune switch alone does not open uncovered rows.
        if postgres:
            conn.execute(text("SET LOCAL vitalbridge.audit_prune = 'on'"))
        with pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text("DELETE FROM audit_entries"))
    assert verify(hub) == (None, 1)
