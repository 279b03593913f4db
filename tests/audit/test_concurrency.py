"""Several connections appending at once keep one contiguous, valid chain."""

from __future__ import annotations

import threading

from sqlalchemy import select

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.audit.models import AuditEntry
from vitalbridge.audit.verify import verify_chain
from vitalbridge.runtime import Hub

THREADS = 6
PER_THREAD = 20


def test_concurrent_writers_keep_the_chain_intact(hub: Hub) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(PER_THREAD):
                with hub.sessions() as session, session.begin():
                    # Two entries per transaction, as ingest writes (reading + delivery queued).
                    record(session, action="webhook.received", outcome=Outcome.success, actor=Actor("gateway", str(n)))
                    record(session, action="reading.stored", outcome="success", actor="service:ingest", detail={"i": i})
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with hub.sessions() as session:
        seqs = list(session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))
        result = verify_chain(session)
    assert seqs == list(range(1, THREADS * PER_THREAD * 2 + 1))
    assert result.ok, result.broken
