"""Receipt→EHR latency with a separate worker process on PostgreSQL (``python -m bench.wakeup_latency``).

A hub on a scratch PostgreSQL database (``VB_INPROCESS_WORKER=false``) takes signed readings on
its webhook at ``--rate`` readings/s; one ``vitalbridge worker`` process delivers them to the
sandbox EHR (both on loopback). Two modes run in the same run, round by round, each with a fresh
worker process:

- ``wakeups``: the worker LISTENs for the NOTIFY that commits with the outbox rows;
- ``polling``: the same worker with ``VB_DELIVERY_PG_WAKEUPS=false``: it learns of rows only by
  polling every ``VB_DELIVERY_POLL_INTERVAL_S`` (the default, 2 s) — the baseline.

Latency per outbox row is ``delivered_at - created_at`` (the row is created by the webhook
request that received the reading; ``delivered_at`` is stamped once the EHR stored it). Prints
one JSON line: p50/p95 per mode (seconds, over all rounds), the p95 ratio wakeups/polling and
whether the wake-up p95 meets ``--goal-p95-ms`` (300).

Options: ``--readings N`` per mode and round (default 100), ``--rounds R`` (2), ``--rate`` (10),
``--postgres-url`` (a server where a scratch database may be created and dropped; default
``VB_TEST_POSTGRES_URL`` or the local server).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import psycopg
from sqlalchemy import select

from vitalbridge.db.base import utcnow
from vitalbridge.delivery.models import OutboxEntry, OutboxStatus
from vitalbridge.demo.drive import reading
from vitalbridge.demo.environment import DemoEnv, demo_environment
from vitalbridge.devices.simulator import post_webhook

MODES = ("wakeups", "polling")


def _scratch_database(admin_url: str) -> tuple[str, str]:
    name = f"vb_bench_wakeup_{os.getpid()}"
    dsn = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{dsn.rpartition('/')[0]}/{name}", name


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _unsettled(env: DemoEnv) -> int:
    with env.hub.sessions() as session:
        rows = session.scalars(
            select(OutboxEntry.id).where(
                OutboxEntry.status.in_([OutboxStatus.pending, OutboxStatus.in_flight, OutboxStatus.blocked])
            )
        ).all()
    return len(rows)


def _latencies(env: DemoEnv, since: datetime) -> list[float]:
    """Rows created by the measured readings (the warm-up had settled before ``since``)."""
    with env.hub.sessions() as session:
        rows = session.execute(
            select(OutboxEntry.created_at, OutboxEntry.delivered_at).where(
                OutboxEntry.status == OutboxStatus.delivered, OutboxEntry.created_at >= since
            )
        ).all()
    return [(delivered - created).total_seconds() for created, delivered in rows if delivered is not None]


def _worker_env(env: DemoEnv, database_url: str, *, wakeups: bool) -> dict[str, str]:
    s = env.hub.settings
    assert s.secret_key is not None
    return {
        **os.environ,
        "VB_DATABASE_URL": database_url,
        "VB_DATA_DIR": str(s.data_dir),
        "VB_SECRET_KEY": s.secret_key.get_secret_value(),
        "VB_ALLOW_PRIVATE_URLS": "true",
        "VB_INPROCESS_WORKER": "false",
        "VB_DELIVERY_PG_WAKEUPS": "true" if wakeups else "false",
        "ECW_RATE_LIMIT": "100000",
        "VB_LOG_LEVEL": "WARNING",
        "ECW_LOG_LEVEL": "WARNING",
    }


def _round(env: DemoEnv, database_url: str, mode: str, run: str, n: int, rate: float) -> list[float]:
    worker = subprocess.Popen(
        [sys.executable, "-m", "vitalbridge", "worker"],
        env=_worker_env(env, database_url, wakeups=mode == "wakeups"),
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("VB_BENCH_WORKER_LOG", os.devnull), "ab"),  # noqa: SIM115
    )
    try:
        with httpx.Client(timeout=30) as client:
            # Warm-up, not measured: the worker is up (and listening, in wake-up mode) once its
            # first delivery is done; then the measured readings go out on a fixed schedule.
            warm = reading(env, f"warm{run}", 0)
            post_webhook(client, env.hub_url, env.gateway_id, env.gateway_secret, warm).raise_for_status()
            if not _wait(lambda: _unsettled(env) == 0, 120):
                raise SystemExit(f"{mode}: the worker did not start delivering")
            time.sleep(1.0)  # let the listener's start-up wake-up pass
            since = utcnow()
            start = time.monotonic()
            for i in range(n):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                resp = post_webhook(client, env.hub_url, env.gateway_id, env.gateway_secret, reading(env, run, i))
                resp.raise_for_status()
        if not _wait(lambda: _unsettled(env) == 0, 300):
            raise SystemExit(f"{mode}: deliveries did not settle")
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
    return _latencies(env, since)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wakeup_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--goal-p95-ms", type=float, default=300.0)
    parser.add_argument(
        "--postgres-url", default=os.environ.get("VB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args(argv)
    database_url, name = _scratch_database(args.postgres_url)
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        # The demo environment reads the database from the environment (else it makes SQLite).
        os.environ["VB_DATABASE_URL"] = database_url
        overrides = {"inprocess_worker": False, "ecw_rate_limit": 100_000.0}
        with demo_environment(
            settings_overrides=overrides, sandbox_rate_per_minute=100_000, practice_rate_per_minute=100_000
        ) as env:
            for r in range(args.rounds):
                for mode in MODES:
                    run = f"{mode}{r}{time.time_ns()}"
                    results[mode] += _round(env, database_url, mode, run, args.readings, args.rate)
    finally:
        _drop_database(args.postgres_url, name)
    out: dict[str, Any] = {
        "bench": "wakeup_latency",
        "backend": "postgresql",
        "rate_per_s": args.rate,
        "readings_per_round": args.readings,
        "rounds": args.rounds,
    }
    for mode in MODES:
        values = results[mode]
        out[mode] = {
            "rows": len(values),
            "p50_ms": round(statistics.median(values) * 1000, 1),
            "p95_ms": round(_percentile(values, 0.95) * 1000, 1),
        }
    out["p95_ratio_wakeups_polling"] = round(out["wakeups"]["p95_ms"] / out["polling"]["p95_ms"], 3)
    out["goal_p95_ms"] = args.goal_p95_ms
    out["goal_met"] = out["wakeups"]["p95_ms"] < args.goal_p95_ms
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
