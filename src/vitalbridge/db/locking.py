"""Row locks that mean the same on both backends.

PostgreSQL takes ``SELECT … FOR UPDATE`` row locks; SQLite has none, but every hub transaction
there starts with ``BEGIN IMMEDIATE`` (``db.engine``), which already serialises writers, so the
same code is correct on both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

T = TypeVar("T")


def for_update(session: Session, stmt: Select[Any]) -> Select[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update()
    return stmt


def get_or_create_locked(session: Session, stmt: Select[Any], factory: Callable[[], T]) -> T:
    """The row ``stmt`` selects, locked; created by ``factory`` first if missing.

    Two PostgreSQL transactions may both miss the row and insert: the loser's unique violation
    is rolled back to a savepoint and it locks the winner's row instead.
    """
    row: T | None = session.scalar(for_update(session, stmt))
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = factory()
            session.add(row)
            session.flush()
        return row
    except IntegrityError:
        row = session.scalar(for_update(session, stmt))
        if row is None:
            raise
        return row
