"""Cost of the audit trail on ingest: N reading-like inserts, each in its own transaction, with
and without an ``audit.record`` in the same transaction (SPEC §9; DESIGN: the reading and its
audit entry commit together).

    python -m bench.audit_record [--n 500] [--rounds 3] [--database-url URL]

Without ``--database-url`` a fresh SQLite file in a temporary folder is used (``VB_DATABASE_URL``
is deliberately not read). A given URL must name a scratch database: the run migrates it and
leaves audit entries in it (the append-only trail cannot be cleaned up afterwards, by design).

Rounds alternate between the two variants so drift hits both; the median of each is compared.
Output is a throughput ratio, meaningful only within one run on one machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Column, DateTime, Float, MetaData, String, Table, insert

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.db.engine import make_engine, make_session_factory
from vitalbridge.db.migrate import upgrade

_meta = MetaData()
# Shaped like a stored reading (ids, code, value, unit, time); dropped after the run.
readings = Table(
    "bench_readings",
    _meta,
    Column("id", String(36), primary_key=True),
    Column("patient_id", String(36)),
    Column("loinc", String(16)),
    Column("value", Float),
    Column("unit", String(16)),
    Column("effective_at", DateTime(timezone=True)),
)


def _run(factory: object, n: int, audited: bool) -> float:
    from sqlalchemy.orm import Session, sessionmaker

    assert isinstance(factory, sessionmaker)
    started = time.perf_counter()
    for i in range(n):
        session: Session
        with factory() as session, session.begin():
            reading_id = str(uuid.uuid4())
            session.execute(
                insert(readings).values(
                    id=reading_id,
                    patient_id="patient-1",
                    loinc="8480-6",
                    value=120.0 + i % 40,
                    unit="mm[Hg]",
                    effective_at=datetime.now(UTC),
                )
            )
            if audited:
                record(
                    session,
                    action="webhook.received",
                    outcome=Outcome.success,
                    actor=Actor("gateway", "bench"),
                    organization_id="org-bench",
                    resource_type="Reading",
                    resource_ids=[reading_id],
                    status_code=202,
                    latency_ms=1.0,
                    correlation_id=uuid.uuid4().hex,
                )
    return n / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="inserts per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default="", help="a scratch database (default: temporary SQLite)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        _meta.create_all(engine)
        factory = make_session_factory(engine)
        try:
            _run(factory, min(50, args.n), audited=True)  # warm-up: connections, caches
            plain: list[float] = []
            audited: list[float] = []
            for _ in range(args.rounds):
                plain.append(_run(factory, args.n, audited=False))
                audited.append(_run(factory, args.n, audited=True))
        finally:
            _meta.drop_all(engine)
            engine.dispose()
    ratio = statistics.median(audited) / statistics.median(plain)
    backend = url.split(":", 1)[0]
    print(
        f"audit_record [{backend}]: {args.n} reading inserts x {args.rounds} rounds, one transaction each; "
        f"throughput with audit / without = {ratio:.2f} "
        f"(audit adds {100 * (1 / ratio - 1):.0f}% time per insert)"
    )


if __name__ == "__main__":
    main()
