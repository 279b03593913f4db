"""The 0010 migration creates exactly what the models declare, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import vitalbridge.app  # noqa: F401 - imports every feature's models
from vitalbridge.db.base import Base
from vitalbridge.db.engine import make_engine

OURS = {"billing_episodes", "billing_practitioner_changes", "billing_time_entries", "billing_reports", "readings"}


def _table_of(diff: object) -> str | None:
    item = diff[0] if isinstance(diff, list) else diff
    for part in item[1:] if isinstance(item, tuple) else ():
        name = getattr(part, "name", None)
        table = getattr(part, "table", None)
        if table is not None and getattr(table, "name", None):
            return str(table.name)
        if isinstance(part, str) and part in OURS:
            return part
        if name in OURS:
            return str(name)
    return None


def test_migration_matches_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    ours = [d for d in diffs if _table_of(d) in OURS]
    assert ours == [], ours
