"""Retention: prune refuses the retention window, keeps the chain verifiable, and is the only way out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.audit.tamper import raw_sql
from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.audit.models import AuditCheckpoint, AuditEntry
from vitalbridge.audit.retention import prune
from vitalbridge.audit.verify import BreakKind, verify_chain
from vitalbridge.errors import Conflict, ValidationFailed
from vitalbridge.runtime import Hub

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=9 * 365)
ACTOR = Actor("cli", "tester")


def seed(hub: Hub, old: int = 5, young: int = 3) -> None:
    with hub.sessions() as session, session.begin():
        for i in range(old):
            record(session, action="old", outcome=Outcome.success, actor=ACTOR, occurred_at=OLD + timedelta(hours=i))
        for _ in range(young):
            record(session, action="young", outcome=Outcome.success, actor=ACTOR)


def count(hub: Hub) -> int:
    with hub.sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def test_prune_refuses_inside_the_retention_window(hub: Hub) -> None:
    seed(hub)
    with hub.sessions() as session, session.begin(), pytest.raises(ValidationFailed, match="retention window"):
        prune(session, before=NOW - timedelta(days=2556), settings=hub.settings, actor=ACTOR)
    assert count(hub) == 8


def test_prune_removes_old_entries_and_the_chain_still_verifies(hub: Hub) -> None:
    seed(hub)
    cutoff = NOW - timedelta(days=8 * 365)
    with hub.sessions() as session, session.begin():
        result = prune(session, before=cutoff, settings=hub.settings, actor=ACTOR)
    assert (result.pruned, result.through_seq, result.record_seq) == (5, 5, 9)
    with hub.sessions() as session:
        remaining = [r.action for r in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
        assert remaining == ["young", "young", "young", "audit.pruned"]
        checked = verify_chain(session)
        assert checked.ok, checked.broken
        assert (checked.first_seq, checked.head_seq, checked.checkpoint_through) == (6, 9, 5)
    # The chain goes on after a prune, and a second prune finds nothing new.
    with hub.sessions() as session, session.begin():
        record(session, action="after", outcome=Outcome.success, actor=ACTOR)
        assert prune(session, before=cutoff, settings=hub.settings, actor=ACTOR).pruned == 0
    with hub.sessions() as session:
        assert verify_chain(session).ok


def test_prune_after_prune_anchors_on_the_latest_checkpoint(hub: Hub) -> None:
    seed(hub, old=3, young=0)
    with hub.sessions() as session, session.begin():
        assert (
            prune(session, before=OLD + timedelta(hours=1, minutes=30), settings=hub.settings, actor=ACTOR).pruned == 2
        )
    with hub.sessions() as session, session.begin():
        assert prune(session, before=OLD + timedelta(days=1), settings=hub.settings, actor=ACTOR).pruned == 1
    with hub.sessions() as session:
        checked = verify_chain(session)
    assert checked.ok, checked.broken
    assert checked.checkpoint_through == 3


def test_tampering_after_a_prune_is_found(hub: Hub) -> None:
    seed(hub)
    with hub.sessions() as session, session.begin():
        prune(session, before=NOW - timedelta(days=8 * 365), settings=hub.settings, actor=ACTOR)
    raw_sql(hub, "UPDATE audit_entries SET prev_hash = '" + "f" * 64 + "' WHERE seq = 6")
    with hub.sessions() as session:
        broken = verify_chain(session).broken
    # The row's own hash covers prev_hash, so the edit shows first as "edited".
    assert broken is not None
    assert broken.seq == 6
    assert broken.kind is BreakKind.edited


def test_a_forged_checkpoint_is_found(hub: Hub) -> None:
    seed(hub)
    with hub.sessions() as session, session.begin():
        prune(session, before=NOW - timedelta(days=8 * 365), settings=hub.settings, actor=ACTOR)
    with hub.sessions() as session:
        row7 = session.get(AuditEntry, 7)
        assert row7 is not None
    # An attacker deletes entry 6 and claims a prune through 6 anchored on entry 6's hash.
    raw_sql(
        hub,
        "DELETE FROM audit_entries WHERE seq = 6",
        "INSERT INTO audit_checkpoints (id, created_at, through_seq, anchor_hash, pruned_count, cutoff, "
        f"record_seq, actor) VALUES ('forged', '2030-01-01 00:00:00', 6, '{row7.prev_hash}', 1, "
        "'2030-01-01 00:00:00', 9, 'cli:attacker')",
    )
    with hub.sessions() as session:
        broken = verify_chain(session).broken
    assert broken is not None
    assert broken.kind is BreakKind.checkpoint
    assert broken.seq == 9


def test_prune_refuses_to_destroy_a_broken_chain(hub: Hub) -> None:
    seed(hub)
    raw_sql(hub, "UPDATE audit_entries SET action = 'forged' WHERE seq = 2")
    with (
        hub.sessions() as session,
        session.begin(),
        pytest.raises(Conflict, match=r"broken at seq 2 \(edited\)"),
    ):
        prune(session, before=NOW - timedelta(days=8 * 365), settings=hub.settings, actor=ACTOR)
    assert count(hub) == 8
    with hub.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditCheckpoint)) == 0


def test_shorter_retention_setting_is_honoured(hub: Hub) -> None:
    seed(hub, old=0, young=2)
    settings = hub.settings.model_copy(update={"audit_retention_days": 1})
    with hub.sessions() as session, session.begin():
        assert prune(session, before=NOW - timedelta(days=1, minutes=1), settings=settings, actor=ACTOR).pruned == 0
        with pytest.raises(ValidationFailed):
            prune(session, before=NOW, settings=settings, actor=ACTOR)
