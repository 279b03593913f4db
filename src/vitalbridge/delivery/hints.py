"""Wake-up hints: "a row just became pending" (DESIGN principle 1: queues only carry hints).

Any transaction that inserts a pending outbox row or moves one to pending (ingest, patient
linking, replay) is noticed by SQLAlchemy events on ``OutboxEntry``; after that transaction
commits, every registered listener is told the row ids. The in-process worker listens to wake
up at once; in Celery mode the hub publishes one task per id (after the commit, so a worker never
looks for a row it cannot see yet).

Across processes on PostgreSQL the same transaction also sends ``NOTIFY vitalbridge_outbox``:
PostgreSQL delivers it only when that transaction commits (and drops it on rollback), so a
``vitalbridge worker`` in another process that LISTENs (``delivery.pg_wakeups``) wakes when the
rows are visible. A lost hint only delays a delivery: workers also poll, and the sweeper
re-queues expired leases.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, event, text
from sqlalchemy.orm import Session

from vitalbridge.delivery.models import OutboxEntry, OutboxStatus

log = logging.getLogger(__name__)

Listener = Callable[[list[str]], None]
_KEY = "vitalbridge.delivery.pending"
_NOTIFIED = "vitalbridge.delivery.notified"
# The LISTEN/NOTIFY channel; the payload is empty (row ids are not needed to wake a worker, and
# identical notifications in one transaction are folded into one by PostgreSQL).
CHANNEL = "vitalbridge_outbox"
_listeners: list[Listener] = []
_lock = threading.Lock()


def subscribe(listener: Listener) -> Callable[[], None]:
    """Register ``listener``; returns the function that unregisters it."""
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock, _suppress():
            _listeners.remove(listener)

    return unsubscribe


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is ValueError


def publish(ids: list[str]) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(ids)
        except Exception:  # a hint must never fail work that already committed
            log.warning("delivery hint listener failed", exc_info=True)


def _note(conn: Connection, target: OutboxEntry) -> None:
    if target.status is not OutboxStatus.pending:
        return
    session = Session.object_session(target)
    if session is None:
        return
    session.info.setdefault(_KEY, set()).add(target.id)
    if conn.dialect.name == "postgresql" and not session.info.get(_NOTIFIED):
        # Emitted on the flush's own connection, inside the transaction that writes the row:
        # PostgreSQL holds the notification until COMMIT. Once per transaction is enough.
        session.info[_NOTIFIED] = True
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


@event.listens_for(OutboxEntry, "after_insert")
def _after_insert(_mapper: Any, conn: Connection, target: OutboxEntry) -> None:
    _note(conn, target)


@event.listens_for(OutboxEntry, "after_update")
def _after_update(_mapper: Any, conn: Connection, target: OutboxEntry) -> None:
    _note(conn, target)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        # SQLAlchemy fires after_commit when a SAVEPOINT is released too; the rows are not
        # committed until the outer transaction is, and other connections cannot see them yet.
        return
    session.info.pop(_NOTIFIED, None)
    ids = session.info.pop(_KEY, None)
    if ids and _listeners:
        publish(sorted(ids))


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    if session.in_nested_transaction():
        # Only a SAVEPOINT was rolled back: rows noted before it are still to be committed. Rows
        # noted inside it may get a needless hint, which is harmless (claims are atomic).
        return
    session.info.pop(_NOTIFIED, None)
    session.info.pop(_KEY, None)


@event.listens_for(Session, "after_soft_rollback")
def _after_soft_rollback(session: Session, _previous: Any) -> None:
    # A rolled-back SAVEPOINT discards the NOTIFY sent inside it: send again on the next row.
    session.info.pop(_NOTIFIED, None)
