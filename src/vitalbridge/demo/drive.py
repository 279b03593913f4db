"""Drive readings through the real webhook, wait for the outbox to settle, and check the EHR
(SPEC §7 "Nothing is lost", "No duplicates").

The verdict comes from the EHR's side: every outbox row's identifier must be among the sandbox's
stored Observations exactly once. Device-to-EHR latency is measured from each reading's
``measured_at`` (set when it is sent) to the row's ``delivered_at``.
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func, select

from vitalbridge.delivery.models import OutboxEntry, OutboxStatus
from vitalbridge.demo.environment import DemoEnv
from vitalbridge.devices.simulator import make_record, post_webhook
from vitalbridge.sandbox.stats import calls_per_observation

SETTLED = (OutboxStatus.delivered, OutboxStatus.dead)


@dataclass(frozen=True)
class Summary:
    sent: int
    delivered: int
    dead: int
    unsettled: int
    observations_expected: int
    observations_found: int
    duplicates: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    # What the EHR saw (sandbox stats): the profile, calls by kind and calls per stored Observation.
    profile: str | None = None
    ehr_calls: dict[str, int] | None = None
    calls_per_observation: float | None = None

    @property
    def ok(self) -> bool:
        return (
            self.unsettled == 0
            and self.dead == 0
            and self.duplicates == 0
            and self.observations_found == self.observations_expected
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def reading(env: DemoEnv, run: str, i: int) -> dict[str, Any]:
    """Mixed readings: BP with pulse, SpO2 with pulse, weight in lb or kg, glucose mg/dL or mmol/L."""
    kind = ("blood_pressure", "pulse_oximetry", "weight", "glucose")[i % 4]
    data: dict[str, Any]
    if kind == "blood_pressure":
        data = {"systolic": 118 + i % 20, "diastolic": 74 + i % 10, "pulse": 62 + i % 25, "unit": "mmHg"}
    elif kind == "pulse_oximetry":
        data = {"spo2": 94 + i % 5, "pulse": 60 + i % 30}
    elif kind == "weight":
        data = {"weight": 150 + i % 40, "unit": "lb"} if i % 8 < 4 else {"weight": 70 + i % 20, "unit": "kg"}
    else:
        data = {"glucose": 90 + i % 80, "unit": "mg/dL"} if i % 8 < 4 else {"glucose": 5.5, "unit": "mmol/L"}
    return make_record(f"demo-{run}-{i}", env.serials[kind], kind, datetime.now(UTC), data)


def send_readings(env: DemoEnv, n: int, sent: Callable[[int], None] | None = None) -> int:
    run = uuid.uuid4().hex[:8]
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            resp = post_webhook(client, env.hub_url, env.gateway_id, env.gateway_secret, reading(env, run, i))
            if resp.status_code not in (200, 202):
                raise RuntimeError(f"the webhook answered {resp.status_code} for reading {i}")
            if sent is not None:
                sent(i + 1)
    return n


@dataclass(frozen=True)
class Tally:
    """Outbox rows by status, and how often deliveries were tried again and the EHR failed them."""

    counts: dict[str, int]
    retries: int
    faults: int

    @property
    def settled(self) -> int:
        return sum(self.counts.get(s.value, 0) for s in SETTLED)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def faults_seen(env: DemoEnv) -> int:
    """Failures the sandbox handed out (injected faults and 429s); 0 if it cannot say."""
    if env.sandbox_http is None:
        return 0
    try:
        resp = env.sandbox_http.get("/_sandbox/stats")
        resp.raise_for_status()
        stats = resp.json()
    except (httpx.HTTPError, ValueError):
        return 0
    injected = stats.get("faults_injected") or {}
    limited = stats.get("rate_limited_by_practice") or {}
    return int(sum(injected.values())) + int(limited.get(env.practice_code, 0))


def tally(env: DemoEnv) -> Tally:
    with env.hub.sessions() as session:
        retries = session.scalar(
            select(func.coalesce(func.sum(OutboxEntry.attempts - 1), 0)).where(
                OutboxEntry.organization_id == env.org_id, OutboxEntry.attempts > 1
            )
        )
    return Tally(statuses(env), int(retries or 0), faults_seen(env))


def statuses(env: DemoEnv) -> dict[str, int]:
    with env.hub.sessions() as session:
        rows = session.execute(
            select(OutboxEntry.status, func.count())
            .where(OutboxEntry.organization_id == env.org_id)
            .group_by(OutboxEntry.status)
        ).all()
    return {status.value: int(n) for status, n in rows}


def wait_settled(env: DemoEnv, timeout_s: float, progress: Callable[[Tally], None]) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        now = tally(env)
        progress(now)
        if now.settled == now.total or time.monotonic() > deadline:
            return now.counts
        time.sleep(1.0)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def verify(env: DemoEnv, sent: int, counts: dict[str, int]) -> Summary:
    with env.hub.sessions() as session:
        rows = session.execute(
            select(OutboxEntry.idempotency_key, OutboxEntry.resource, OutboxEntry.delivered_at).where(
                OutboxEntry.organization_id == env.org_id
            )
        ).all()
    expected = {r.idempotency_key for r in rows}
    latencies = []
    for r in rows:
        effective = r.resource.get("effectiveDateTime") if isinstance(r.resource, dict) else None
        if r.delivered_at is not None and isinstance(effective, str):
            measured = datetime.fromisoformat(effective.replace("Z", "+00:00"))
            latencies.append((r.delivered_at - measured).total_seconds())
    assert env.sandbox_http is not None
    resp = env.sandbox_http.get("/_sandbox/observations", params={"practice": env.practice_code})
    resp.raise_for_status()
    cost = calls_per_observation(env.sandbox_http.get("/_sandbox/stats").raise_for_status().json())
    profile = env.sandbox_http.get("/_sandbox/behaviour").raise_for_status().json()["profile"]
    stored: collections.Counter[str] = collections.Counter()
    for item in resp.json()["observations"]:
        for ident in item["resource"].get("identifier") or []:
            key = f"{ident.get('system')}|{ident.get('value')}"
            if key in expected:
                stored[key] += 1
    return Summary(
        sent=sent,
        delivered=counts.get(OutboxStatus.delivered.value, 0),
        dead=counts.get(OutboxStatus.dead.value, 0),
        unsettled=sum(n for s, n in counts.items() if s not in {x.value for x in SETTLED}),
        observations_expected=len(expected),
        observations_found=len(stored),
        duplicates=sum(n - 1 for n in stored.values()),
        latency_p50_s=_percentile(latencies, 0.50),
        latency_p95_s=_percentile(latencies, 0.95),
        profile=str(profile),
        ehr_calls=cost["ehr_calls"],
        calls_per_observation=cost["calls_per_observation"],
    )
