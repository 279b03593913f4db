"""Is the database there, reachable and at the schema this code expects?

The hub refuses to serve an unmigrated database (its background loops would fail on every
tick) and ``/readyz`` reports a schema behind the code's migrations. Errors here are
``ConfigurationError``\\ s whose message says what to run; they never carry the URL's password.

    ConfigurationError
    ├── DatabaseUrlInvalid     VB_DATABASE_URL names a driver the hub does not speak
    ├── DatabaseMissing        the SQLite file does not exist (wrong folder, or never migrated)
    ├── DatabaseUnreachable    the server refused or timed out
    └── SchemaNotMigrated      tables missing or older than this version's migrations
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from vitalbridge.errors import ConfigurationError

MIGRATE_HINT = "run `vitalbridge migrate` (or start with `vitalbridge serve --migrate`)"


class DatabaseUrlInvalid(ConfigurationError):
    pass


class DatabaseMissing(ConfigurationError):
    pass


class DatabaseUnreachable(ConfigurationError):
    pass


class SchemaNotMigrated(ConfigurationError):
    pass


def describe(url: str) -> str:
    """Which database a URL names, for humans: the SQLite file's absolute path, or the server
    URL with its password masked (it may come from a secret store)."""
    if not url:
        return "(no database URL)"
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "an unparseable VB_DATABASE_URL"
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite file {sqlite_path(url) or ':memory:'}"
    return parsed.render_as_string(hide_password=True)


def sqlite_path(url: str) -> Path | None:
    """The file an SQLite URL opens, or None for other databases and in-memory ones."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).resolve()


@cache
def head_revisions() -> frozenset[str]:
    """The revisions this version of the code migrates to (read once from the scripts)."""
    from alembic.script import ScriptDirectory

    from vitalbridge.db.migrate import MIGRATIONS_DIR

    return frozenset(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


@dataclass(frozen=True)
class SchemaState:
    current: frozenset[str]
    heads: frozenset[str]

    @property
    def at_head(self) -> bool:
        return self.current == self.heads

    @property
    def label(self) -> str:
        if self.at_head:
            return "current"
        return "missing" if not self.current else "behind"


def schema_state(engine: Engine) -> SchemaState:
    """Read the database's alembic revision; raises DatabaseUnreachable if it cannot connect."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            current = frozenset(MigrationContext.configure(conn).get_current_heads())
    except OperationalError as exc:
        raise DatabaseUnreachable(
            f"cannot connect to the database ({describe(engine.url.render_as_string())}): "
            f"{type(exc.orig).__name__ if exc.orig is not None else 'OperationalError'}; "
            "check that it is running and VB_DATABASE_URL is right"
        ) from None
    return SchemaState(current=current, heads=head_revisions())


def require_current_schema(engine: Engine) -> None:
    """Refuse a database that lacks this version's tables, naming the command that fixes it."""
    state = schema_state(engine)
    if state.at_head:
        return
    where = describe(engine.url.render_as_string())
    if not state.current:
        raise SchemaNotMigrated(f"the database ({where}) has no vitalbridge tables: {MIGRATE_HINT}")
    raise SchemaNotMigrated(
        f"the database ({where}) is at schema {', '.join(sorted(state.current))}, "
        f"this version needs {', '.join(sorted(state.heads))}: {MIGRATE_HINT}"
    )


def require_existing_sqlite(url: str) -> None:
    """An SQLite file that is not there would be created empty on connect, with a fresh key
    beside it; a command that expects data says where it looked instead."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise DatabaseMissing(
            f"no database at {path}: run `vitalbridge migrate` to create it there, "
            "or point VB_DATA_DIR (or VB_DATABASE_URL) at the hub's database"
        )
