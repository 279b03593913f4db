"""Inspecting and replaying deliveries (SPEC §7 "dead letters can be inspected and replayed").

Shared by the API (``delivery.views``) and the CLI (``vitalbridge deliveries``). Every query is
scoped to an organization when one is given; a replay is audited in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge import audit
from vitalbridge.delivery.models import OutboxEntry, OutboxStatus
from vitalbridge.errors import Conflict, NotFound

REPLAYABLE = (OutboxStatus.dead, OutboxStatus.pending)


def list_deliveries(
    session: Session,
    organization_id: str | None,
    *,
    status: OutboxStatus | None = None,
    practice_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[OutboxEntry]:
    stmt = select(OutboxEntry)
    if organization_id is not None:
        stmt = stmt.where(OutboxEntry.organization_id == organization_id)
    if status is not None:
        stmt = stmt.where(OutboxEntry.status == status)
    if practice_id is not None:
        stmt = stmt.where(OutboxEntry.practice_id == practice_id)
    stmt = stmt.order_by(OutboxEntry.created_at, OutboxEntry.id).limit(limit).offset(offset)
    return session.scalars(stmt).all()


def get_delivery(session: Session, organization_id: str | None, outbox_id: str) -> OutboxEntry:
    row = session.get(OutboxEntry, outbox_id)
    if row is None or (organization_id is not None and row.organization_id != organization_id):
        raise NotFound("no such delivery")
    return row


def replay(
    session: Session, organization_id: str | None, outbox_id: str, *, actor: audit.Actor | str, now: datetime
) -> OutboxEntry:
    """Make a dead (or waiting) row due now. Its retry age starts again; the EHR is searched first
    because an earlier attempt may have landed."""
    row = get_delivery(session, organization_id, outbox_id)
    if row.status not in REPLAYABLE:
        raise Conflict(f"a {row.status.value} delivery cannot be replayed")
    before = row.status
    row.status = OutboxStatus.pending
    row.next_attempt_at = now
    row.retry_since = now
    row.dead_reason = None
    row.lease_owner = None
    row.lease_expires_at = None
    row.updated_at = now
    audit.record(
        session,
        action="delivery.replayed",
        outcome=audit.Outcome.success,
        actor=actor,
        organization_id=row.organization_id,
        practice_id=row.practice_id,
        resource_type="Outbox",
        resource_ids=[row.id],
        detail={"from": before.value, "to": OutboxStatus.pending.value},
    )
    return row


def replay_dead(
    session: Session,
    organization_id: str | None,
    *,
    practice_id: str | None,
    actor: audit.Actor | str,
    now: datetime,
    limit: int = 10_000,
) -> list[str]:
    rows = list_deliveries(session, organization_id, status=OutboxStatus.dead, practice_id=practice_id, limit=limit)
    return [replay(session, organization_id, r.id, actor=actor, now=now).id for r in rows]
