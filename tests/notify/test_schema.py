"""The 0009 migration creates exactly what the push models declare, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import vitalbridge.app  # noqa: F401 - imports every feature's models
from vitalbridge.db.base import Base
from vitalbridge.db.engine import make_engine
from vitalbridge.db.migrate import current_heads

OURS = {"push_devices", "push_outbox", "program_alerting", "alert_escalations", "quiet_hours"}


def _tables(diff: object) -> set[str]:
    found: set[str] = set()
    items = diff if isinstance(diff, list) else [diff]
    for item in items:
        for part in item[1:] if isinstance(item, tuple) else ():
            table = getattr(part, "table", None)
            name = getattr(table, "name", None) or getattr(part, "name", None)
            if isinstance(part, str):
                name = part
            if isinstance(name, str):
                found.add(name)
    return found


def test_migration_matches_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    ours = [d for d in diffs if _tables(d) & OURS]
    assert ours == [], ours


def test_the_push_migration_is_the_single_head(db_url: str) -> None:
    # Later migrations chain after 0009_push; what matters is that the chain has one head.
    assert len(current_heads(db_url)) == 1
