"""Claiming outbox rows and sweeping expired leases (SPEC §7 "Nothing is lost", DESIGN principle 1).

A claim is one short transaction that turns due ``pending`` rows into ``in_flight`` rows owned by
one worker until ``lease_expires_at``::

    UPDATE outbox SET status='in_flight', lease_owner=…, lease_expires_at=…, attempts=attempts+1
    WHERE id IN (SELECT id FROM outbox WHERE status='pending' AND next_attempt_at <= now
                 ORDER BY next_attempt_at LIMIT n [FOR UPDATE SKIP LOCKED])
    RETURNING id

On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets concurrent workers claim disjoint rows without
waiting on each other; on SQLite the hub's ``BEGIN IMMEDIATE`` (``db.engine``) makes the statement
the only writer. ``attempts`` counts claims, so a row whose previous claim never finished (a
crashed worker) is known to be a retry and is looked up in the EHR before it is sent again.

Every transition out of ``in_flight`` is guarded by ``lease_owner``: a worker whose lease was
swept and re-claimed by another can no longer change the row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from vitalbridge import audit
from vitalbridge.db.base import utcnow
from vitalbridge.delivery.models import OutboxEntry, OutboxStatus
from vitalbridge.runtime import Hub

SWEEPER = audit.Actor.service("delivery-sweeper")


def _claim(session: Session, owner: str, lease_s: float, now: datetime, *, limit: int, only: str | None) -> list[str]:
    due = (
        select(OutboxEntry.id)
        .where(OutboxEntry.status == OutboxStatus.pending, OutboxEntry.next_attempt_at <= now)
        .order_by(OutboxEntry.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if only is not None:
        due = due.where(OutboxEntry.id == only)
    # Select (and lock) the ids first, then update exactly those. As one UPDATE ... WHERE id IN
    # (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED), PostgreSQL may evaluate the subquery more
    # than once and claim more than ``limit`` rows, leaving the extra ones leased to a worker
    # that never runs them until the lease expires.
    ids = list(session.scalars(due).all())
    if not ids:
        return []
    stmt = (
        update(OutboxEntry)
        .where(OutboxEntry.id.in_(ids), OutboxEntry.status == OutboxStatus.pending)
        .values(
            status=OutboxStatus.in_flight,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_s),
            attempts=OutboxEntry.attempts + 1,
            updated_at=now,
        )
        .returning(OutboxEntry.id)
        .execution_options(synchronize_session=False)
    )
    return list(session.scalars(stmt).all())


def claim_due(hub: Hub, owner: str, limit: int, *, lease_s: float | None = None) -> list[str]:
    """Claim up to ``limit`` due rows for ``owner``; returns their ids (oldest due first)."""
    if limit <= 0:
        return []
    with hub.sessions() as session, session.begin():
        return _claim(session, owner, lease_s or hub.settings.delivery_lease_s, utcnow(), limit=limit, only=None)


def claim_one(hub: Hub, outbox_id: str, owner: str, *, lease_s: float | None = None) -> bool:
    """Claim one row if it is pending and due (what a Celery task or a replay does)."""
    with hub.sessions() as session, session.begin():
        ids = _claim(session, owner, lease_s or hub.settings.delivery_lease_s, utcnow(), limit=1, only=outbox_id)
    return bool(ids)


def sweep_expired(hub: Hub, *, now: datetime | None = None) -> int:
    """Return rows whose lease expired (their worker died or hung) to ``pending``, due now."""
    now = now or utcnow()
    with hub.sessions() as session, session.begin():
        stale = (
            select(OutboxEntry.id, OutboxEntry.organization_id, OutboxEntry.practice_id, OutboxEntry.lease_owner)
            .where(OutboxEntry.status == OutboxStatus.in_flight, OutboxEntry.lease_expires_at < now)
            .with_for_update(skip_locked=True)
        )
        rows = session.execute(stale).all()
        for row in rows:
            done = session.execute(
                update(OutboxEntry)
                .where(
                    OutboxEntry.id == row.id,
                    OutboxEntry.status == OutboxStatus.in_flight,
                    OutboxEntry.lease_owner == row.lease_owner,
                )
                .values(
                    status=OutboxStatus.pending,
                    lease_owner=None,
                    lease_expires_at=None,
                    next_attempt_at=now,
                    last_error="lease expired: the worker stopped before finishing",
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if done.rowcount:  # type: ignore[attr-defined]
                audit.record(
                    session,
                    action="delivery.lease_expired",
                    outcome=audit.Outcome.failure,
                    actor=SWEEPER,
                    organization_id=row.organization_id,
                    practice_id=row.practice_id,
                    resource_type="Outbox",
                    resource_ids=[row.id],
                    detail={"to": OutboxStatus.pending.value},
                )
        return len(rows)


def due_ids(hub: Hub, limit: int) -> list[str]:
    """Ids of pending rows that are due, without claiming them (hints for Celery)."""
    with hub.sessions() as session:
        return list(
            session.scalars(
                select(OutboxEntry.id)
                .where(OutboxEntry.status == OutboxStatus.pending, OutboxEntry.next_attempt_at <= utcnow())
                .order_by(OutboxEntry.next_attempt_at)
                .limit(limit)
            ).all()
        )


def next_due_in(hub: Hub) -> float | None:
    """Seconds until the earliest pending row is due (0 if one is due now), None if none is pending."""
    with hub.sessions() as session:
        first = session.scalar(
            select(func.min(OutboxEntry.next_attempt_at)).where(OutboxEntry.status == OutboxStatus.pending)
        )
    if first is None:
        return None
    return max(0.0, (first - utcnow()).total_seconds())
