"""``vitalbridge triage …``: run triage work outside the hub process (SPEC §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from vitalbridge.cli.common import hub_session

triage = typer.Typer(help="Triage: check-missed readings, sweep once, run the background loop.", no_args_is_help=True)


@triage.command("check-missed")
def check_missed(
    now: Annotated[str | None, typer.Option(help="Pretend it is this time (ISO 8601 with offset).")] = None,
    org: Annotated[str | None, typer.Option(help="Only this organization (id or name).")] = None,
) -> None:
    """Open alerts for patients without readings for too long; resolve them when readings resumed."""
    from vitalbridge.db.base import utcnow
    from vitalbridge.tenancy.service import get_organization
    from vitalbridge.triage.missed import check_missed_readings

    when = utcnow()
    if now:
        when = datetime.fromisoformat(now)
        if when.tzinfo is None:
            raise typer.BadParameter("give a UTC offset", param_hint="--now")
    with hub_session() as (_hub, session):
        org_id = get_organization(session, org).id if org else None
        summary = check_missed_readings(session, now=when, organization_id=org_id)
        typer.echo(f"checked {summary.checked} patients: {summary.opened} alerts opened, {summary.resolved} resolved")


@triage.command("sweep")
def sweep() -> None:
    """Triage readings still waiting (e.g. with VB_TRIAGE_INLINE=false), until none is left."""
    from vitalbridge.cli.common import open_hub
    from vitalbridge.triage.background import sweep_once

    total = 0
    hub = open_hub()
    try:
        while (n := sweep_once(hub)) > 0:
            total += n
    finally:
        hub.close()
    typer.echo(f"triaged {total} readings")


@triage.command("run")
def run() -> None:
    """Run the triage loop in the foreground (for deployments with VB_INPROCESS_WORKER=false)."""
    import asyncio

    from vitalbridge.cli.common import open_hub
    from vitalbridge.triage.background import run_loop

    hub = open_hub()
    try:
        asyncio.run(run_loop(hub))
    except KeyboardInterrupt:
        pass
    finally:
        hub.close()


def register(app: typer.Typer) -> None:
    app.add_typer(triage, name="triage")
