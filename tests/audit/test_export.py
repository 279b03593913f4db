"""Export: NDJSON and CSV, period and organization filters, paging in fixed batches."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from vitalbridge.audit import Outcome, record
from vitalbridge.audit.export import COLUMNS, ExportFormat, export, iter_entries
from vitalbridge.runtime import Hub

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def seed(hub: Hub) -> None:
    with hub.sessions() as session, session.begin():
        for i in range(7):
            record(
                session,
                action="ehr.call",
                outcome=Outcome.success,
                actor="service:worker",
                organization_id="org-a" if i % 2 == 0 else "org-b",
                resource_ids=[f"obs-{i}"],
                detail={"i": i, "note_code": "x,y"},
                occurred_at=T0 + timedelta(days=i),
            )


def test_ndjson_export_filters_by_period_and_org(hub: Hub) -> None:
    seed(hub)
    out = io.StringIO()
    with hub.sessions() as session:
        n = export(session, out, ExportFormat.ndjson, since=T0 + timedelta(days=1), until=T0 + timedelta(days=6))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert n == len(lines) == 5
    assert [e["seq"] for e in lines] == [2, 3, 4, 5, 6]
    assert lines[0]["occurred_at"] == "2026-03-02T00:00:00.000000Z"
    assert set(lines[0]) == set(COLUMNS)
    with hub.sessions() as session:
        only_a = list(iter_entries(session, organization_id="org-a", batch_size=2))
    assert [e["seq"] for e in only_a] == [1, 3, 5, 7]


def test_csv_export_round_trips(hub: Hub) -> None:
    seed(hub)
    out = io.StringIO()
    with hub.sessions() as session:
        export(session, out, ExportFormat.csv, since=T0, until=T0 + timedelta(days=30))
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 7
    assert json.loads(rows[0]["detail"]) == {"i": 0, "note_code": "x,y"}
    assert json.loads(rows[0]["resource_ids"]) == ["obs-0"]
    assert len(rows[6]["entry_hash"]) == 64


def test_batched_paging_returns_every_entry_once(hub: Hub) -> None:
    seed(hub)
    with hub.sessions() as session:
        assert [e["seq"] for e in iter_entries(session, batch_size=3)] == list(range(1, 8))
