"""``vitalbridge worker`` and ``vitalbridge deliveries …`` (SPEC §7, §10; docs/delivery.md)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vitalbridge.cli.common import hub_session, operator

deliveries = typer.Typer(help="Outbox deliveries to the EHR: list, replay dead letters.", no_args_is_help=True)


def worker(
    concurrency: Annotated[int | None, typer.Option(help="Deliveries at once (VB_DELIVERY_CONCURRENCY).")] = None,
    celery: Annotated[bool, typer.Option(help="Run a Celery worker on VB_BROKER_URL instead of polling.")] = False,
) -> None:
    """Deliver outbox rows to the EHR until stopped (production: run several, on PostgreSQL)."""
    import asyncio
    import signal

    from vitalbridge.settings import load_settings

    settings = load_settings()
    n = concurrency or settings.delivery_concurrency
    if celery:
        from vitalbridge.delivery.celery_app import app as celery_app
        from vitalbridge.delivery.celery_app import configure

        configure(settings)
        import os

        # Rows are claimed in the database, so workers need no mingle/gossip chatter (mingle
        # also delays start-up waiting for replies); the node name is unique per process.
        celery_app.worker_main(
            [
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(n),
                "--loglevel",
                "WARNING",
                "--without-mingle",
                "--without-gossip",
                "--hostname",
                f"vitalbridge-{os.getpid()}@%h",
            ]
        )
        return
    from vitalbridge.cli.common import open_hub
    from vitalbridge.delivery.worker import Worker
    from vitalbridge.observability.logging import configure_logging

    hub = open_hub(settings)
    configure_logging(settings)
    delivery_worker = Worker(hub, concurrency=n)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, delivery_worker.stop)
        await delivery_worker.run()

    try:
        asyncio.run(main())
    finally:
        hub.close()


@deliveries.command("list")
def list_cmd(
    org: Annotated[str | None, typer.Option(help="Organization (id or name); default all.")] = None,
    status: Annotated[str | None, typer.Option(help="pending, in_flight, delivered, dead, blocked")] = None,
    practice: Annotated[str | None, typer.Option(help="Practice id or code (needs --org).")] = None,
    limit: int = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List deliveries (default: all statuses, oldest first)."""
    from vitalbridge.delivery import service
    from vitalbridge.delivery.models import OutboxStatus
    from vitalbridge.delivery.schemas import DeliveryOut
    from vitalbridge.tenancy.service import get_organization, get_practice

    wanted = OutboxStatus(status) if status else None
    with hub_session() as (_hub, session):
        org_id = get_organization(session, org).id if org else None
        practice_id = get_practice(session, org_id, practice).id if (practice and org_id) else practice
        rows = service.list_deliveries(session, org_id, status=wanted, practice_id=practice_id, limit=limit)
        for row in rows:
            out = DeliveryOut.of(row)
            if as_json:
                typer.echo(out.model_dump_json())
            else:
                typer.echo(
                    f"{out.id}  {out.status:<9}  attempts={out.attempts}  "
                    f"{out.dead_reason or ''}  {out.last_status_code or ''}  {out.ehr_resource_id or ''}"
                )


@deliveries.command("replay")
def replay_cmd(
    delivery_id: Annotated[str | None, typer.Argument(help="The delivery (outbox row) id.")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Replay every dead letter in scope.")] = False,
    org: Annotated[str | None, typer.Option(help="Organization (id or name).")] = None,
    practice: Annotated[str | None, typer.Option(help="Practice id or code (needs --org).")] = None,
) -> None:
    """Make dead letters due again (after fixing their cause)."""
    from vitalbridge.db.base import utcnow
    from vitalbridge.delivery import service
    from vitalbridge.tenancy.service import get_organization, get_practice

    if bool(delivery_id) == all_dead:
        raise typer.BadParameter("give a delivery id or --all-dead")
    with hub_session() as (_hub, session):
        org_id = get_organization(session, org).id if org else None
        if delivery_id:
            row = service.replay(session, org_id, delivery_id, actor=operator(), now=utcnow())
            typer.echo(json.dumps({"replayed": [row.id]}))
            return
        practice_id = get_practice(session, org_id, practice).id if (practice and org_id) else practice
        ids = service.replay_dead(session, org_id, practice_id=practice_id, actor=operator(), now=utcnow())
        typer.echo(json.dumps({"replayed": ids}))


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.add_typer(deliveries, name="deliveries")
