"""Wake-up hints fire only after the commit that made rows pending (issue 20). The in-process
worker and, with Celery configured, the hub's broker publisher (``celery_hints`` subscribes
``celery_app.enqueue`` to these hints) are both told only once another connection can see the
rows, so a woken worker never looks for a row that is not committed yet; a rollback tells no one.

Ingest releases a SAVEPOINT before its commit, and SQLAlchemy fires ``after_commit`` for that
too: hints used to go out then, while the rows were still invisible to every other connection
(on SQLite the listener even found the database locked by the very transaction it was told of)."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from tests.delivery.support import hub_http, make_env, record
from vitalbridge.delivery import hints
from vitalbridge.delivery.models import OutboxEntry, OutboxStatus
from vitalbridge.devices.simulator import post_webhook
from vitalbridge.runtime import Hub


def test_hint_listeners_see_committed_rows_and_nothing_after_rollback(hub: Hub) -> None:
    env = make_env(hub, "http://127.0.0.1:9", ehr_patient_id="p-1")
    told: list[list[str]] = []
    visible: list[set[str]] = []

    def listener(ids: list[str]) -> None:
        told.append(ids)
        # A separate connection, as a worker in another thread or process would use.
        with hub.sessions() as other:
            rows = other.scalars(select(OutboxEntry).where(OutboxEntry.id.in_(ids))).all()
            visible.append({r.id for r in rows if r.status is OutboxStatus.pending})

    unsubscribe = hints.subscribe(listener)
    try:
        with hub_http(hub) as url, httpx.Client(timeout=30) as client:
            resp = post_webhook(client, url, env.gateway_id, env.gateway_secret, record(env, 0))
            assert resp.status_code == 202, resp.text
        assert len(told) == 1
        assert told[0]
        assert visible == [set(told[0])]  # every hinted row was committed and pending when told

        with hub.sessions() as session:
            session.begin()
            row = session.scalars(select(OutboxEntry)).first()
            assert row is not None
            row.status = OutboxStatus.dead
            session.flush()
            row.status = OutboxStatus.pending
            session.flush()
            session.rollback()
        assert len(told) == 1  # the rolled-back transaction hinted nothing
    finally:
        unsubscribe()
