"""The month's billing report for a practice (SPEC §13) against a ``SELECT count(*)`` baseline.

    python -m bench.billing_report [--patients 5000] [--days 30] [--per-day 4] [--rounds 3]
                                   [--backends sqlite,postgresql] [--postgres-url URL]

Seeds one practice with ``--patients`` enrolled patients (time zones east and west of UTC), a
month of readings (``--per-day`` a day, one in eight entered manually) and three time entries
each, then times, per backend and in the same run:

- baseline: ``SELECT count(*)`` over the same readings and time entries the report reads;
- report: ``compute_report`` for the month, everything included (queries, day counting, rules).

Rounds alternate between the two; medians are compared. Prints one JSON line: per backend the
seconds of each and their ratio, meaningful only within one run on one machine. SQLite runs in a
temporary file; PostgreSQL in a scratch database created and dropped on ``--postgres-url``'s
server (default: the local test server).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select

from vitalbridge.billing.episodes import local_midnight
from vitalbridge.billing.models import Episode, TimeEntry
from vitalbridge.billing.report import Policy, compute_report
from vitalbridge.db.engine import make_engine, make_session_factory
from vitalbridge.db.migrate import upgrade
from vitalbridge.devices.models import Device, Gateway, Reading
from vitalbridge.patients.models import Patient, Provider
from vitalbridge.tenancy.models import Organization, Practice

MONTH = "2026-11"
FIRST = date(2026, 11, 1)
AS_OF = datetime(2026, 12, 5, tzinfo=UTC)
ZONES = ["America/Los_Angeles", "America/Chicago", "America/New_York", "Europe/Berlin", "Asia/Kolkata"]
CHUNK = 20_000


def _id() -> str:
    return str(uuid.uuid4())


def seed(url: str, patients: int, days: int, per_day: int) -> dict[str, Any]:
    engine = make_engine(url)
    now = datetime.now(UTC)
    org, practice, gateway, provider = _id(), _id(), _id(), _id()
    with engine.begin() as conn:
        conn.execute(insert(Organization.__table__), [{"id": org, "name": f"bench-{org[:8]}", "created_at": now}])
        conn.execute(
            insert(Practice.__table__),
            [
                {
                    "id": practice,
                    "organization_id": org,
                    "name": "Bench practice",
                    "practice_code": "BENCH",
                    "environment": "sandbox",
                    "fhir_base_url": "https://fhir.example.org/fhir/r4/BENCH",
                    "token_url": "https://oauth.example.org/token",
                    "client_id": "bench",
                    "auth_method": "private_key_jwt",
                    "scopes": "system/Patient.read",
                    "rate_limit_per_minute": 250,
                    "delivery_channel": "fhir",
                    "request_timeout_s": 30.0,
                    "created_at": now,
                }
            ],
        )
        conn.execute(
            insert(Gateway.__table__),
            [
                {
                    "id": gateway,
                    "organization_id": org,
                    "kind": "mioconnect",
                    "name": "",
                    "secret_sealed": b"x",
                    "created_at": now,
                }
            ],
        )
        conn.execute(
            insert(Provider.__table__),
            [{"id": provider, "organization_id": org, "name": "Dr Bench", "created_at": now}],
        )
    pids = [_id() for _ in range(patients)]
    dids = [_id() for _ in range(patients)]
    zones = [ZONES[i % len(ZONES)] for i in range(patients)]
    rows_p = [
        {
            "id": p,
            "organization_id": org,
            "practice_id": practice,
            "ehr_id": f"e{i}",
            "mrn": f"M{i}",
            "identifiers": [],
            "given_name": "Bench",
            "family_name": f"Patient{i:06d}",
            "status": "active",
            "created_at": now,
            "updated_at": now,
        }
        for i, p in enumerate(pids)
    ]
    rows_d = [
        {"id": d, "organization_id": org, "serial": f"S{i}", "patient_id": p, "created_at": now}
        for i, (d, p) in enumerate(zip(dids, pids, strict=True))
    ]
    rows_e = [
        {
            "id": _id(),
            "organization_id": org,
            "practice_id": practice,
            "patient_id": p,
            "program": "rpm",
            "time_zone": tz,
            "ordering_practitioner_id": provider,
            "condition_code": "I10",
            "consent_at": now,
            "consent_modality": "verbal",
            "consent_recorded_by": "RN",
            "setup_on": FIRST - timedelta(days=10),
            "setup_staff": "RN",
            "billing_practitioner_id": provider,
            "started_on": FIRST - timedelta(days=10),
            "starts_at": local_midnight(FIRST - timedelta(days=10), tz),
            "created_at": now,
            "created_by": "bench",
        }
        for p, tz in zip(pids, zones, strict=True)
    ]
    with engine.begin() as conn:
        for table, rows in ((Patient.__table__, rows_p), (Device.__table__, rows_d), (Episode.__table__, rows_e)):
            for i in range(0, len(rows), CHUNK):
                conn.execute(insert(table), rows[i : i + CHUNK])
        rows: list[tuple[Any, ...]] = []
        start = datetime.combine(FIRST, datetime.min.time(), tzinfo=UTC)
        for i, (p, d) in enumerate(zip(pids, dids, strict=True)):
            # Patients skip a varying number of days: some reach 16, some only 2-15, some fewer.
            skip = i % 7
            for day in range(days):
                if skip and (day + 1) % (skip + 1) == 0:
                    continue
                for k in range(per_day):
                    at = start + timedelta(days=day, hours=2 + 5 * k, minutes=i % 60)
                    origin = "manual" if k == 3 and day % 8 == 0 else "device"
                    rows.append((_id(), org, gateway, f"{i}-{day}-{k}", "webhook", origin, d, p, "blood_pressure", at))
        _bulk_readings(conn, rows)
        readings = len(rows)
        entries = [
            {
                "id": _id(),
                "organization_id": org,
                "practice_id": practice,
                "patient_id": p,
                "staff": "RN Bench",
                "credential": "clinical_staff",
                "started_at": start + timedelta(days=3 + 9 * k, hours=15),
                "seconds": 60 * (4 + (i + k) % 11),
                "activity": "communication" if k == 0 else "data_review",
                "interactive": k == 0,
                "modality": "call" if k == 0 else None,
                "created_at": now,
                "created_by": "bench",
            }
            for i, p in enumerate(pids)
            for k in range(3)
        ]
        for i in range(0, len(entries), CHUNK):
            conn.execute(insert(TimeEntry.__table__), entries[i : i + CHUNK])
    engine.dispose()
    return {"practice_id": practice, "readings": readings, "time_entries": len(entries)}


_READING_COLUMNS = (
    "id",
    "organization_id",
    "gateway_id",
    "gateway_reading_id",
    "source",
    "origin",
    "device_id",
    "patient_id",
    "reading_type",
    "measured_at",
    "measured_offset_min",
    "received_at",
    "unassigned",
)


def _bulk_readings(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Readings by the driver's fastest path (COPY, or one prepared executemany): seeding is set-up,
    not what is measured, and SQLAlchemy's per-row processing would make it most of the run."""
    full = [(*r, 0, r[-1], False) for r in rows]
    raw = conn.connection.dbapi_connection
    assert raw is not None
    columns = ", ".join(_READING_COLUMNS)
    if conn.dialect.name == "postgresql":
        with raw.cursor() as cur, cur.copy(f"COPY readings ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for row in full:
                copy.write_row(row)
        return
    text_rows = [
        tuple(v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v for v in row)
        for row in full
    ]
    marks = ", ".join("?" for _ in _READING_COLUMNS)
    raw.cursor().executemany(f"INSERT INTO readings ({columns}) VALUES ({marks})", text_rows)  # noqa: S608


def measure(url: str, practice_id: str, rounds: int) -> dict[str, Any]:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    lo = datetime.combine(FIRST, datetime.min.time(), tzinfo=UTC) - timedelta(days=31)
    hi = datetime.combine(FIRST, datetime.min.time(), tzinfo=UTC) + timedelta(days=61)
    baseline_q = select(func.count()).select_from(Reading).where(Reading.measured_at >= lo, Reading.measured_at < hi)
    entries_q = select(func.count()).select_from(TimeEntry).where(TimeEntry.practice_id == practice_id)
    base_t: list[float] = []
    report_t: list[float] = []
    rows = counted = 0
    try:
        for _ in range(rounds + 1):  # the first round warms caches and is discarded
            with factory() as session:
                t0 = time.perf_counter()
                counted = int(session.scalar(baseline_q) or 0) + int(session.scalar(entries_q) or 0)
                t1 = time.perf_counter()
                practice = session.get(Practice, practice_id)
                assert practice is not None
                report = compute_report(session, practice, MONTH, as_of=AS_OF, policy=Policy())
                t2 = time.perf_counter()
            base_t.append(t1 - t0)
            report_t.append(t2 - t1)
            rows = len(report["patients"])
    finally:
        engine.dispose()
    base, rep = statistics.median(base_t[1:]), statistics.median(report_t[1:])
    return {
        "baseline_count_s": round(base, 4),
        "report_s": round(rep, 3),
        "ratio_report_to_count": round(rep / base, 1) if base else None,
        "rows_counted": counted,
        "patients_reported": rows,
        "codes": report["totals"],
    }


def _postgres_database(admin_url: str) -> tuple[str, str]:
    import psycopg

    name = f"vb_bench_billing_{os.getpid()}"
    dsn = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{dsn.rpartition('/')[0]}/{name}", name


def _drop_postgres(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_backend(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    dropped: str | None = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'billing-bench.db'}"
    else:
        url, dropped = _postgres_database(args.postgres_url)
    try:
        upgrade(url)
        t0 = time.perf_counter()
        seeded = seed(url, args.patients, args.days, args.per_day)
        print(f"{backend}: seeded {seeded['readings']:,} readings in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        result = measure(url, seeded["practice_id"], args.rounds)
        return {"readings": seeded["readings"], "time_entries": seeded["time_entries"], **result}
    finally:
        if dropped:
            _drop_postgres(args.postgres_url, dropped)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.billing_report", description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("VB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a server where a scratch database may be created and dropped",
    )
    args = parser.parse_args(argv)
    out: dict[str, Any] = {
        "bench": "billing_report",
        "month": MONTH,
        "patients": args.patients,
        "per_day": args.per_day,
    }
    with tempfile.TemporaryDirectory(prefix="vb-billing-bench-") as tmp:
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            out[backend] = run_backend(backend, args, Path(tmp))
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
