"""Helpers shared by CLI modules: settings, the hub, and turning errors into exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from sqlalchemy.orm import Session

from vitalbridge.audit.service import Actor
from vitalbridge.errors import VitalbridgeError
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.settings import load_settings


def operator() -> Actor:
    """The audit actor for CLI actions: the operator's login name."""
    import getpass

    try:
        return Actor("cli", getpass.getuser())
    except (KeyError, OSError):
        return Actor("cli", "unknown")


@contextmanager
def hub_session() -> Iterator[tuple[Hub, Session]]:
    """A hub on the configured database and one committed transaction; errors exit 1 with the message."""
    hub = build_hub(load_settings())
    try:
        with hub.sessions() as session, session.begin():
            yield hub, session
    except VitalbridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        hub.close()
