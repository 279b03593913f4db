"""Export the audit trail for compliance review (SPEC §9), as NDJSON or CSV.

Rows are read in ``seq`` order in fixed-size batches (keyset paging) and written as they come,
so memory stays flat however long the period.
"""

from __future__ import annotations

import csv
import enum
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.audit.chain import HASHED_FIELDS
from vitalbridge.audit.models import AuditEntry

COLUMNS = (*HASHED_FIELDS, "prev_hash", "entry_hash")


class ExportFormat(enum.StrEnum):
    ndjson = "ndjson"  # one JSON object per line
    csv = "csv"  # resource_ids and detail as JSON text in their cells


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iter_entries(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    organization_id: str | None = None,
    batch_size: int = 500,
) -> Iterator[dict[str, Any]]:
    """Entries with ``since <= occurred_at < until``, oldest ``seq`` first, as plain dicts."""
    columns = [getattr(AuditEntry, c) for c in COLUMNS]
    cursor = 0
    while True:
        query = select(*columns).where(AuditEntry.seq > cursor).order_by(AuditEntry.seq).limit(batch_size)
        if since is not None:
            query = query.where(AuditEntry.occurred_at >= since)
        if until is not None:
            query = query.where(AuditEntry.occurred_at < until)
        if organization_id is not None:
            query = query.where(AuditEntry.organization_id == organization_id)
        rows = session.execute(query).all()
        if not rows:
            return
        for row in rows:
            item = {c: getattr(row, c) for c in COLUMNS}
            item["occurred_at"] = _iso(item["occurred_at"])
            yield item
        cursor = rows[-1].seq


def write_ndjson(entries: Iterator[dict[str, Any]], out: TextIO) -> int:
    n = 0
    for entry in entries:
        out.write(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
        n += 1
    return n


def write_csv(entries: Iterator[dict[str, Any]], out: TextIO) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    n = 0
    for entry in entries:
        writer.writerow(
            [
                json.dumps(entry[c], sort_keys=True, separators=(",", ":"))
                if c in ("resource_ids", "detail")
                else ("" if entry[c] is None else entry[c])
                for c in COLUMNS
            ]
        )
        n += 1
    return n


def export(
    session: Session,
    out: TextIO,
    fmt: ExportFormat,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    organization_id: str | None = None,
) -> int:
    """Write the selected entries to ``out``; return how many."""
    entries = iter_entries(session, since=since, until=until, organization_id=organization_id)
    return write_ndjson(entries, out) if fmt is ExportFormat.ndjson else write_csv(entries, out)
