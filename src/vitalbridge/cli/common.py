"""Helpers shared by CLI modules: settings, the hub, and turning errors into exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from sqlalchemy import event
from sqlalchemy.orm import Session

from vitalbridge.audit.service import Actor
from vitalbridge.db.status import describe, require_current_schema, require_existing_sqlite
from vitalbridge.errors import VitalbridgeError
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.settings import Settings, load_settings


def operator() -> Actor:
    """The audit actor for CLI actions: the operator's login name."""
    import getpass

    try:
        return Actor("cli", getpass.getuser())
    except (KeyError, OSError):
        return Actor("cli", "unknown")


def fail(exc: VitalbridgeError) -> NoReturn:
    """Exit 1 with the error's one-line message (``--debug``: let it through with its traceback)."""
    from vitalbridge.cli.failures import STATE

    if STATE.debug:
        raise exc
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1) from None


def open_hub(settings: Settings | None = None) -> Hub:
    """The hub on the configured database, refusing one that is not there or not migrated.

    A command run from another folder without VB_DATA_DIR would otherwise create an empty
    SQLite file and a fresh key beside it, and fail later on a missing table."""
    settings = settings or load_settings()
    require_existing_sqlite(settings.effective_database_url)
    hub = build_hub(settings)
    try:
        require_current_schema(hub.engine)
    except BaseException:
        hub.close()
        raise
    return hub


@contextmanager
def hub_session() -> Iterator[tuple[Hub, Session]]:
    """A hub on the configured database and one committed transaction; errors exit 1 with the message.

    A command that changed anything says on stderr which database it wrote to."""
    wrote = False

    def _flushed(*_args: Any) -> None:
        nonlocal wrote
        wrote = True

    try:
        hub = open_hub()
    except VitalbridgeError as exc:
        fail(exc)
    try:
        with hub.sessions() as session:
            event.listen(session, "after_flush", _flushed)
            with session.begin():
                yield hub, session
    except VitalbridgeError as exc:
        fail(exc)
    finally:
        hub.close()
    if wrote:
        typer.echo(f"wrote to {describe(hub.settings.effective_database_url)}", err=True)
