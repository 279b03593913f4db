"""``vitalbridge serve|migrate|up``: run the hub."""

from __future__ import annotations

from typing import Annotated

import typer

from vitalbridge.settings import Settings, load_settings


def _migrate(settings: Settings) -> None:
    """Upgrade the schema, saying on stderr which database (and whether it is new)."""
    from vitalbridge.crypto.sealing import KEY_FILE_NAME
    from vitalbridge.db.migrate import upgrade
    from vitalbridge.db.status import describe, sqlite_path

    url = settings.effective_database_url
    path = sqlite_path(url)
    new = path is not None and not path.exists()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    typer.echo(f"{'creating' if new else 'migrating'} {describe(url)}", err=True)
    key_file = (settings.data_dir / KEY_FILE_NAME).resolve()
    if settings.secret_key is None and not key_file.exists():
        # A fresh key cannot open secrets sealed with another: say so where it is made.
        typer.echo(f"creating key file {key_file} (VB_SECRET_KEY is not set)", err=True)
    upgrade(url)


def migrate() -> None:
    """Upgrade the database (VB_DATABASE_URL, else SQLite under VB_DATA_DIR) to the latest schema."""
    from vitalbridge.runtime import build_hub
    from vitalbridge.tenancy.ecw_seed import seed_practice_from_settings

    settings = load_settings()
    _migrate(settings)
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
    host: Annotated[str | None, typer.Option(help="Interface to bind [default: VB_HOST, 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [default: VB_PORT, 8000].")] = None,
    run_migrations: Annotated[
        bool, typer.Option("--migrate", help="Upgrade the database schema first (else it must be current).")
    ] = False,
) -> None:
    """Run the hub API on VB_DATABASE_URL (run `vitalbridge migrate` first, or pass --migrate)."""
    import uvicorn

    from vitalbridge.app import create_app
    from vitalbridge.cli.common import open_hub

    # Options win over VB_HOST / VB_PORT, which win over the defaults (docs/configuration.md).
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = load_settings(**overrides)
    from vitalbridge.quickstart import require_free_port

    require_free_port("VB_PORT", settings.host, settings.port, "vitalbridge serve")
    if run_migrations:
        _migrate(settings)
    hub = open_hub(settings)
    # log_config=None: uvicorn logs through the hub's redacting JSON handlers. access_log=False:
    # uvicorn's access line prints the concrete path; the hub logs ``http.access`` with the
    # route template instead. proxy_headers=False: the app applies VB_TRUSTED_PROXIES itself;
    # uvicorn's default would believe any loopback peer.
    uvicorn.run(
        create_app(hub=hub),
        host=settings.host,
        port=settings.port,
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
