"""``vitalbridge serve|migrate|up``: run the hub."""

from __future__ import annotations

from typing import Annotated

import typer

from vitalbridge.settings import load_settings


def migrate() -> None:
    """Upgrade the database (VB_DATABASE_URL, else SQLite under VB_DATA_DIR) to the latest schema."""
    from vitalbridge.db.migrate import upgrade
    from vitalbridge.runtime import build_hub
    from vitalbridge.tenancy.ecw_seed import seed_practice_from_settings

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    typer.echo("database is up to date")
    hub = build_hub(settings)
    try:
        with hub.sessions() as session, session.begin():
            practice = seed_practice_from_settings(session, settings, hub.sealer)
            if practice is not None:
                typer.echo(f"practice {practice.practice_code} ({practice.id}) from ECW_* settings is registered")
    finally:
        hub.close()


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Run the hub API on VB_DATABASE_URL (run `vitalbridge migrate` first)."""
    import uvicorn

    from vitalbridge.app import create_app

    settings = load_settings(host=host, port=port)
    # log_config=None: uvicorn logs through the hub's redacting JSON handlers. access_log=False:
    # uvicorn's access line prints the concrete path; the hub logs ``http.access`` with the
    # route template instead. proxy_headers=False: the app applies VB_TRUSTED_PROXIES itself;
    # uvicorn's default would believe any loopback peer.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


def up() -> None:
    """Evaluate vitalbridge in one command: SQLite, sandbox EHR, hub and a demo tenant (`make run`)."""
    import asyncio

    from vitalbridge.quickstart import run_quickstart

    asyncio.run(run_quickstart(load_settings()))


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)
    app.command("serve")(serve)
    app.command("up")(up)
