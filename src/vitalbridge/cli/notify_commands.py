"""``vitalbridge alerts escalate`` and ``vitalbridge notify …``: push work outside the hub (SPEC §6, §8)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from vitalbridge.cli.common import hub_session

alerts = typer.Typer(help="Alert workflow: escalate unacknowledged critical alerts.", no_args_is_help=True)
notify = typer.Typer(
    help="Push notifications: run, run-once, status, received (the demo FCM endpoint).", no_args_is_help=True
)

NowOption = Annotated[str | None, typer.Option(help="Pretend it is this time (ISO 8601 with offset).")]


def _when(now: str | None) -> datetime:
    from vitalbridge.db.base import utcnow

    if not now:
        return utcnow()
    try:
        when = datetime.fromisoformat(now)
    except ValueError:
        raise typer.BadParameter("not an ISO 8601 time", param_hint="--now") from None
    if when.tzinfo is None:
        raise typer.BadParameter("give a UTC offset", param_hint="--now")
    return when


@alerts.command("escalate")
def escalate(
    now: NowOption = None,
    org: Annotated[str | None, typer.Option(help="Only this organization (id or name).")] = None,
) -> None:
    """Escalate critical alerts left unacknowledged longer than the escalation delay."""
    from vitalbridge.notify.escalation import escalate_overdue
    from vitalbridge.tenancy.service import get_organization

    when = _when(now)
    with hub_session() as (hub, session):
        org_id = get_organization(session, org).id if org else None
        summary = escalate_overdue(session, hub.settings, now=when, organization_id=org_id)
        typer.echo(f"checked {summary.checked} open critical alerts: {summary.escalated} escalated")


@notify.command("run-once")
def run_once(now: NowOption = None) -> None:
    """One pass: escalate, turn new alert events into pushes, send what is due."""
    from vitalbridge.cli.common import open_hub
    from vitalbridge.errors import VitalbridgeError
    from vitalbridge.notify.background import close_sender
    from vitalbridge.notify.background import run_once as one_pass

    hub = open_hub()
    try:
        summary = one_pass(hub, now=_when(now))
    except VitalbridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        close_sender(hub)
        hub.close()
    d, s = summary.dispatch, summary.send
    typer.echo(
        f"escalated {summary.escalation.escalated}; events {d.events}: {d.queued} pushes queued ({d.deferred} deferred)"
    )
    if s is None:
        typer.echo("FCM is not configured (VB_FCM_CREDENTIALS_FILE): pushes wait in the outbox")
    else:
        typer.echo(
            f"sent {s.sent}, retrying {s.retried}, tokens pruned {s.pruned}, failed {s.dead}, cancelled {s.cancelled}"
        )


@notify.command("run")
def run() -> None:
    """Run the push loop in the foreground (for deployments with VB_INPROCESS_WORKER=false)."""
    import asyncio

    from vitalbridge.cli.common import open_hub
    from vitalbridge.notify.background import close_sender, run_loop

    hub = open_hub()
    try:
        asyncio.run(run_loop(hub))
    except KeyboardInterrupt:
        pass
    finally:
        close_sender(hub)
        hub.close()


@notify.command("status")
def status() -> None:
    """Push outbox by status, and registered devices by status."""
    from sqlalchemy import func, select

    from vitalbridge.notify.models import PushDevice, PushOutbox

    with hub_session() as (_hub, session):
        pushes = session.execute(select(PushOutbox.status, func.count()).group_by(PushOutbox.status)).all()
        devices = session.execute(select(PushDevice.status, func.count()).group_by(PushDevice.status)).all()
    typer.echo("pushes:  " + (", ".join(f"{s.value} {n}" for s, n in sorted(pushes)) or "none"))
    typer.echo("devices: " + (", ".join(f"{s.value} {n}" for s, n in sorted(devices)) or "none"))


@notify.command("received")
def received(
    url: Annotated[str | None, typer.Option(help="The fake FCM endpoint (default: the one `make run` starts).")] = None,
) -> None:
    """What the demo FCM endpoint of `make run` has received (action, severity, alert id)."""
    import httpx

    from vitalbridge.settings import load_settings

    base = (url or f"http://127.0.0.1:{load_settings().fake_fcm_port}").rstrip("/")
    try:
        resp = httpx.get(f"{base}/_fake/messages", timeout=10)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        typer.echo(f"error: no fake FCM endpoint at {base} ({type(exc).__name__})", err=True)
        raise typer.Exit(1) from None
    messages = resp.json()["messages"]
    typer.echo(f"{len(messages)} messages")
    for item in messages:
        data = item["message"].get("data", {})
        title = item["message"].get("notification", {}).get("title", "")
        typer.echo(f"{data.get('action', '?'):16} {data.get('severity', '?'):9} {data.get('alert_id', '?')}  {title}")


def register(app: typer.Typer) -> None:
    app.add_typer(alerts, name="alerts")
    app.add_typer(notify, name="notify")
