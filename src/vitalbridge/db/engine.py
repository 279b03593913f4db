"""Engines and sessions for SQLite (embedded default, WAL) and PostgreSQL (production)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


AUDIT_GUARD_FUNCTION = "vb_audit_guard"


def _guard_on() -> int:
    return 1


def make_engine(url: str, **kwargs: Any) -> Engine:
    try:
        return _make_engine(normalise_url(url), **kwargs)
    except ArgumentError:
        from vitalbridge.db.status import DatabaseUrlInvalid

        # The URL may carry a password: name only its scheme.
        match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
        scheme = match.group(1) if match else "(none)"
        raise DatabaseUrlInvalid(
            f"VB_DATABASE_URL scheme {scheme!r} is not supported: use postgresql://user@host/db "
            "or sqlite:///path, or leave it empty for SQLite under VB_DATA_DIR"
        ) from None


def _make_engine(url: str, **kwargs: Any) -> Engine:
    # SQL parameters are PHI: keep them out of logs and exception messages (SPEC §9).
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        # Several threads (API, in-process worker) share the file; WAL lets readers run
        # beside the single writer and busy_timeout waits out the writer instead of failing.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's implicit transactions would defeat BEGIN IMMEDIATE below.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            # The audit tables' append-only triggers test this switch (SQLite has no session
            # settings; migration 0004_audit_guards). Always on in the hub.
            dbapi_conn.create_function(AUDIT_GUARD_FUNCTION, 0, _guard_on, deterministic=True)

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Take the write lock up front: a read-then-write transaction that upgrades its
            # lock later can fail with SQLITE_BUSY regardless of busy_timeout.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session
