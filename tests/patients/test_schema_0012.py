"""Migration 0012_access_deletions creates exactly what the models declare, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import vitalbridge.app  # noqa: F401 - imports every feature's models
from vitalbridge.db.base import Base
from vitalbridge.db.engine import make_engine
from vitalbridge.db.migrate import alembic_config, current_heads

OURS = {"practices", "bulk_sync_files", "bulk_sync_jobs"}


def test_0012_columns_match_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    ours = [d for d in diffs if any(OURS & {str(getattr(p, "name", p)) for p in (d if isinstance(d, tuple) else ())})]
    assert ours == [], ours
    # Applied: on the chain below the database's head (later migrations sit on top of it).
    script = ScriptDirectory.from_config(alembic_config(db_url))
    applied = {rev.revision for head in current_heads(db_url) for rev in script.walk_revisions("base", head)}
    assert "0012_access_deletions" in applied
