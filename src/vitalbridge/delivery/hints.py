"""Wake-up hints: "a row just became pending" (DESIGN principle 1: queues only carry hints).

Any transaction that inserts a pending outbox row or moves one to pending (ingest, patient
linking, replay) is noticed by SQLAlchemy events on ``OutboxEntry``; after that transaction
commits, every registered listener is told the row ids. The in-process worker listens to wake
up at once; in Celery mode the hub publishes one task per id. A lost hint only delays a
delivery: workers also poll, and the sweeper re-queues expired leases.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from vitalbridge.delivery.models import OutboxEntry, OutboxStatus

log = logging.getLogger(__name__)

Listener = Callable[[list[str]], None]
_KEY = "vitalbridge.delivery.pending"
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


def _note(target: OutboxEntry) -> None:
    if target.status is not OutboxStatus.pending:
        return
    session = Session.object_session(target)
    if session is not None:
        session.info.setdefault(_KEY, set()).add(target.id)


@event.listens_for(OutboxEntry, "after_insert")
def _after_insert(_mapper: Any, _conn: Any, target: OutboxEntry) -> None:
    _note(target)


@event.listens_for(OutboxEntry, "after_update")
def _after_update(_mapper: Any, _conn: Any, target: OutboxEntry) -> None:
    _note(target)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    ids = session.info.pop(_KEY, None)
    if ids and _listeners:
        publish(sorted(ids))


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_KEY, None)
