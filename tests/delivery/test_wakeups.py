"""Cross-process wake-ups on PostgreSQL (issue 20): a separate ``vitalbridge worker`` with polling
effectively off (a one-day poll interval) still delivers a reading posted to the webhook, because
the transaction that commits the outbox rows sends ``NOTIFY vitalbridge_outbox`` and the worker
LISTENs. Without that notification the worker would sleep for the whole poll interval."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable

import httpx
import psycopg
import pytest

from tests.delivery.support import hub_http, identifiers, make_env, record, sandbox
from tests.delivery.test_chaos import spawn, worker_env
from vitalbridge.delivery.hints import CHANNEL
from vitalbridge.delivery.pg_wakeups import listen_dsn
from vitalbridge.devices.simulator import post_webhook
from vitalbridge.runtime import Hub

DEADLINE_S = float(os.environ.get("VB_WAKEUP_TEST_DEADLINE_S", "60"))


def wait_for(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def listeners(dsn: str) -> int:
    """Backends of this database whose last statement was the worker's LISTEN."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
            (f"LISTEN {CHANNEL}",),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_separate_worker_delivers_by_wake_up_with_polling_off(hub: Hub) -> None:
    dsn = listen_dsn(hub.settings.effective_database_url)
    assert dsn is not None
    env_vars = worker_env(
        hub,
        VB_INPROCESS_WORKER="false",
        # Polling and the lease sweep effectively never run: only a wake-up can start a delivery.
        VB_DELIVERY_POLL_INTERVAL_S="86400",
        VB_DELIVERY_SWEEP_INTERVAL_S="86400",
    )
    with sandbox() as sb:
        env = make_env(hub, sb.url, ehr_patient_id=sb.patient_id())
        proc = spawn(["worker", "--concurrency", "2"], env_vars)
        try:
            assert wait_for(lambda: listeners(dsn) >= 1, 60), "the worker never started listening"
            with hub_http(hub) as url, httpx.Client(timeout=30) as client:
                # Two rounds: the first may race the worker's start-up claim; by the second the
                # worker has finished its work and sleeps until woken.
                for i in range(2):
                    reading = record(env, i)
                    resp = post_webhook(client, url, env.gateway_id, env.gateway_secret, reading)
                    assert resp.status_code in (200, 202), resp.text
                    delivered = wait_for(lambda: set(env.statuses()) == {"delivered"}, DEADLINE_S)
                    assert delivered, env.statuses()
            assert proc.poll() is None  # the worker is still running, not restarted
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        rows = env.rows()
        assert len(rows) >= 2
        assert set(identifiers(sb.observations())) == {r.idempotency_key for r in rows}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_notify_reaches_listeners_only_after_commit(hub: Hub) -> None:
    """The NOTIFY travels with the transaction: nothing before COMMIT, nothing after ROLLBACK."""
    from sqlalchemy import select

    from vitalbridge.delivery.models import OutboxEntry, OutboxStatus

    dsn = listen_dsn(hub.settings.effective_database_url)
    assert dsn is not None
    with sandbox() as sb:
        env = make_env(hub, sb.url, ehr_patient_id=sb.patient_id())
        with hub_http(hub) as url, httpx.Client(timeout=30) as client:
            resp = post_webhook(client, url, env.gateway_id, env.gateway_secret, record(env, 0))
            assert resp.status_code in (200, 202), resp.text
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")

        def received() -> int:
            listener.execute("SELECT 1")  # let the connection read what the server sent
            return sum(1 for _ in listener.notifies(timeout=0.05))

        with hub.sessions() as session:
            session.begin()
            row = session.scalars(select(OutboxEntry)).first()
            assert row is not None
            row.status = OutboxStatus.dead
            session.flush()
            row.status = OutboxStatus.pending  # becomes pending again: a hint
            session.flush()
            assert received() == 0  # sent inside the open transaction, not yet delivered
            session.rollback()
        assert received() == 0  # rolled back: never delivered
        with hub.sessions() as session, session.begin():
            row = session.scalars(select(OutboxEntry)).first()
            assert row is not None
            row.status = OutboxStatus.dead
            session.flush()
            row.status = OutboxStatus.pending
        assert wait_for(lambda: received() > 0, 10)


def _admin(dsn: str, sql: str, *params: object) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql, params or None)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_listener_reconnects_after_its_connection_dies(hub: Hub) -> None:
    """A dropped LISTEN connection comes back, with a wake-up for what it may have missed."""
    import asyncio

    from vitalbridge.delivery.pg_wakeups import listen

    dsn = listen_dsn(hub.settings.effective_database_url)
    assert dsn is not None

    async def scenario() -> int:
        woken = asyncio.Event()
        count = 0

        def wake() -> None:
            nonlocal count
            count += 1
            woken.set()

        async def next_wake() -> None:
            await asyncio.wait_for(woken.wait(), 30)
            woken.clear()

        task = asyncio.create_task(listen(dsn, wake))
        try:
            await next_wake()  # connected and listening
            terminate = (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query = %s"
            )
            await asyncio.to_thread(_admin, dsn, terminate, f"LISTEN {CHANNEL}")
            await next_wake()  # listening again
            await asyncio.to_thread(_admin, dsn, "SELECT pg_notify(%s, '')", CHANNEL)
            await next_wake()  # and notifications reach the new connection
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return count

    assert asyncio.run(scenario()) == 3
