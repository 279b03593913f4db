"""Acceptance on the scale-out path (SPEC §7, §10; DESIGN principle 2): Celery workers on the real
Redis, the sandbox failing 30 % of requests, a worker process SIGKILLed twice and restarted;
afterwards every Observation is in the EHR exactly once and nothing is pending or in flight.
A smaller run shows the same delivery path through RabbitMQ.

Each run uses its own queue name (and, on Redis, its own key prefix), so parallel test runs on
this machine never take each other's messages.
"""

from __future__ import annotations

import collections
import contextlib
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.delivery.support import hub_http, identifiers, make_env, post_readings, sandbox
from tests.delivery.test_chaos import FAULTS, run_chaos, spawn, wait_until, worker_env
from vitalbridge.delivery import celery_app, hints
from vitalbridge.runtime import Hub

pytestmark = pytest.mark.slow

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


@contextlib.contextmanager
def hub_publishes_hints(hub: Hub, broker_url: str) -> Iterator[dict[str, str]]:
    """Point the hub and its workers at ``broker_url`` with a fresh queue; the hub publishes a
    hint per new pending row, as ``celery_hints`` does in a serving hub."""
    tag = uuid.uuid4().hex[:12]
    extra = {
        "VB_BROKER_URL": broker_url,
        "VB_CELERY_QUEUE": f"vb-test-{tag}",
        "VB_CELERY_KEY_PREFIX": f"vb-test-{tag}:" if broker_url.startswith("redis") else "",
    }
    hub.settings.broker_url = extra["VB_BROKER_URL"]
    hub.settings.celery_queue = extra["VB_CELERY_QUEUE"]
    hub.settings.celery_key_prefix = extra["VB_CELERY_KEY_PREFIX"]
    celery_app.configure(hub.settings)
    unsubscribe = hints.subscribe(celery_app.enqueue)
    try:
        yield extra
    finally:
        unsubscribe()
        if broker_url.startswith("redis"):
            client = redis.Redis.from_url(broker_url)
            keys = list(client.scan_iter(match=f"{extra['VB_CELERY_KEY_PREFIX']}*"))
            if keys:
                client.delete(*keys)
            client.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_celery_on_redis_survives_worker_kills(hub: Hub) -> None:
    with hub_publishes_hints(hub, REDIS_URL) as broker:
        env = worker_env(hub, VB_INPROCESS_WORKER="false", **broker)
        args = ["worker", "--celery", "--concurrency", "6"]
        # One Celery worker process: it is the one killed, twice, so every kill leaves claimed rows behind.
        run_chaos(hub, lambda: [spawn(args, env)], lambda _i: spawn(args, env))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_celery_on_rabbitmq_delivers(hub: Hub) -> None:
    with hub_publishes_hints(hub, AMQP_URL) as broker, sandbox() as sb:
        env = make_env(hub, sb.url, ehr_patient_id=sb.patient_id(), timeout_s=0.3)
        sb.faults(**{**FAULTS, "seed": 5})
        with hub_http(hub) as url:
            expected = post_readings(env, url, 40)
        proc = spawn(["worker", "--celery", "--concurrency", "4"], worker_env(hub, **broker))
        try:
            done = wait_until(lambda: env.statuses() == {"delivered": expected}, 90)
            assert done, env.statuses()
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except Exception:
                proc.kill()
                raise
        counts = collections.Counter(identifiers(sb.observations()))
        assert [k for k, n in counts.items() if n > 1] == []
        assert set(counts) == {r.idempotency_key for r in env.rows()}
