"""Webhook ingest throughput with triage inline vs without (``python -m bench.ingest``).

Both modes run in the same process against the same database, interleaved round by round so
drift (cache warm-up, a growing table) hits both alike; the report is the median of each and
their ratio. Each request is a signed MioConnect blood-pressure reading with pulse (2 measurements,
2 outbox rows, 1 audit entry); a fifth of them breach a threshold so triage opens/updates alerts.

Options: ``--readings N`` per mode and round, ``--rounds R``, ``--concurrency C`` (client threads),
``--database-url URL`` (default: a fresh SQLite file; pass a PostgreSQL URL to measure that).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from vitalbridge.app import create_app
from vitalbridge.audit import Actor
from vitalbridge.db.base import utcnow
from vitalbridge.db.migrate import upgrade
from vitalbridge.devices import gateway_service, registry
from vitalbridge.devices.gateways import GatewayKind
from vitalbridge.devices.simulator import make_record, post_webhook
from vitalbridge.patients.models import Patient
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.servers import ServerThread
from vitalbridge.settings import Settings
from vitalbridge.tenancy import service
from vitalbridge.tenancy.schemas import PracticeIn

PATIENTS = 50
ACTOR = Actor.service("bench")


def _tenant(hub: Hub, name: str) -> tuple[str, str]:
    """An organization with a practice, PATIENTS patients each with an assigned cuff, and a gateway."""
    with hub.sessions() as session, session.begin():
        org = service.create_organization(session, name)
        practice = service.add_practice(
            session,
            org.id,
            PracticeIn.model_validate(
                {
                    "practice_code": "BENCH",
                    "fhir_base_url": "https://fhir.example.org/fhir/r4/BENCH",
                    "token_url": "https://oauth.example.org/token",
                    "client_id": "bench",
                }
            ),
            hub.sealer,
            hub.settings,
        )
        for i in range(PATIENTS):
            patient = Patient(organization_id=org.id, practice_id=practice.id, ehr_id=f"{name}-{i}")
            session.add(patient)
            session.flush()
            registry.assign_device(
                session,
                organization_id=org.id,
                serial=f"{name}-CUFF-{i}",
                patient_id=patient.id,
                actor=ACTOR,
                now=utcnow(),
            )
        gw, secret = gateway_service.create_gateway(
            session, hub.sealer, organization_id=org.id, kind=GatewayKind.mioconnect, actor=ACTOR
        )
    return gw.id, secret


def _records(name: str, start: int, n: int) -> list[dict[str, object]]:
    at = datetime.now(UTC) - timedelta(minutes=1)
    out = []
    for i in range(start, start + n):
        systolic = 185 if i % 5 == 0 else 128  # a fifth breach bp_systolic_high
        out.append(
            make_record(
                f"{name}-r{i}",
                f"{name}-CUFF-{i % PATIENTS}",
                "blood_pressure",
                at - timedelta(seconds=i),
                {"systolic": systolic, "diastolic": 82, "pulse": 70, "unit": "mmHg"},
            )
        )
    return out


def _run(url: str, gateway_id: str, secret: str, records: list[dict[str, object]], concurrency: int) -> float:
    """Readings per second for posting ``records``; every answer must be 202."""
    clients = [httpx.Client(timeout=60) for _ in range(concurrency)]
    try:

        def post(i: int) -> int:
            return post_webhook(clients[i % concurrency], url, gateway_id, secret, records[i]).status_code

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            codes = list(pool.map(post, range(len(records))))
        elapsed = time.perf_counter() - started
    finally:
        for c in clients:
            c.close()
    bad = [c for c in codes if c != 202]
    if bad:
        raise SystemExit(f"{len(bad)} requests were not accepted (first: HTTP {bad[0]})")
    return len(records) / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        base = Settings(database_url=url, data_dir=Path(tmp), secret_key="bench-only", inprocess_worker=False)  # type: ignore[arg-type]
        hubs = {
            "with triage": build_hub(base.model_copy(update={"triage_inline": True})),
            "without triage": build_hub(base.model_copy(update={"triage_inline": False})),
        }
        stamp = str(int(time.time()))
        names = {"with triage": f"tri{stamp}", "without triage": f"raw{stamp}"}
        tenants = {mode: _tenant(hub, names[mode]) for mode, hub in hubs.items()}
        results: dict[str, list[float]] = {mode: [] for mode in hubs}
        try:
            with (
                ServerThread(create_app(hub=hubs["with triage"], background=False)) as url_with,
                ServerThread(create_app(hub=hubs["without triage"], background=False)) as url_without,
            ):
                urls = {"with triage": url_with, "without triage": url_without}
                # Warm-up (imports, first connections, query plans), not measured.
                for mode in hubs:
                    _run(urls[mode], *tenants[mode], _records(names[mode], 10**6, 20), 1)
                for r in range(args.rounds):
                    for mode in hubs:
                        records = _records(names[mode], r * args.readings, args.readings)
                        results[mode].append(_run(urls[mode], *tenants[mode], records, args.concurrency))
        finally:
            for hub in hubs.values():
                hub.close()

    backend = url.split(":", 1)[0]
    with_t = statistics.median(results["with triage"])
    without_t = statistics.median(results["without triage"])
    print(f"webhook ingest, {backend}, {args.readings} readings x {args.rounds} rounds, concurrency {args.concurrency}")
    for label, mode in (("with triage inline", "with triage"), ("without triage", "without triage")):
        rounds = ", ".join(f"{x:.0f}" for x in results[mode])
        print(f"  {label:<20} {statistics.median(results[mode]):8.1f} readings/s  (rounds: {rounds})")
    print(f"  ratio with/without   {with_t / without_t:8.2f}")


if __name__ == "__main__":
    main()
