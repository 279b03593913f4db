"""``vitalbridge gateways …``: gateway accounts, secret rotation, batch sync (SPEC §5).

``vitalbridge gateway …`` is the same group (both spellings are in use in the docs and scripts).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer

from vitalbridge.audit import Actor
from vitalbridge.cli.common import hub_session
from vitalbridge.db.base import utcnow
from vitalbridge.devices import gateway_service
from vitalbridge.devices.gateways import GatewayKind
from vitalbridge.errors import VitalbridgeError
from vitalbridge.security.urls import check_outbound_url
from vitalbridge.tenancy import service as tenancy

gateways = typer.Typer(help="Device gateways (accounts, webhook secrets, batch sync).", no_args_is_help=True)
CLI_ACTOR = Actor.service("cli")


@gateways.command("add")
def add(
    org: Annotated[str, typer.Option(help="Organization id or name.")],
    kind: Annotated[GatewayKind, typer.Option(help="Gateway kind (webhook path segment).")],
    name: Annotated[str, typer.Option(help="A label.")] = "",
    api_url: Annotated[str | None, typer.Option(help="Base URL of the gateway's REST API (batch sync).")] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="VB_GATEWAY_API_KEY", help="Key for the gateway's REST API.")
    ] = None,
) -> None:
    """Create a gateway. Prints its id and webhook secret; the secret is shown only this once."""
    with hub_session() as (hub, session):
        if api_url:
            check_outbound_url(api_url, hub.settings, field="api_url", resolver=hub.resolver)
        organization = tenancy.get_organization(session, org)
        gw, secret = gateway_service.create_gateway(
            session,
            hub.sealer,
            organization_id=organization.id,
            kind=kind,
            name=name,
            api_base_url=api_url,
            api_key=api_key,
            actor=CLI_ACTOR,
        )
        gateway_id, webhook = gw.id, f"{hub.settings.base_url}/api/v1/webhooks/{kind.value}/"
    # Printed only after the commit: a secret shown for a gateway that was not stored would mislead.
    typer.echo(f"gateway id: {gateway_id}")
    typer.echo(f"secret:     {secret}")
    typer.echo(f"webhook:    {webhook}", err=True)


@gateways.command("list")
def list_(org: Annotated[str, typer.Option(help="Organization id or name.")]) -> None:
    """List gateways as `id<TAB>kind<TAB>name<TAB>rotation`."""
    with hub_session() as (_hub, session):
        organization = tenancy.get_organization(session, org)
        for gw in gateway_service.list_gateways(session, organization.id):
            rotation = "rotating" if gw.previous_secret_sealed else "-"
            if gw.previous_secret_last_used_at:
                rotation += f" (old secret last used {gw.previous_secret_last_used_at.isoformat()})"
            typer.echo(f"{gw.id}\t{gw.kind.value}\t{gw.name}\t{rotation}")


@gateways.command("rotate-secret")
def rotate_secret(gateway: Annotated[str, typer.Argument(help="Gateway id.")]) -> None:
    """Make a new secret (printed once). The old one keeps working until `finish-rotation`."""
    with hub_session() as (hub, session):
        secret = gateway_service.rotate_secret(session, hub.sealer, gateway, actor=CLI_ACTOR, now=utcnow())
    typer.echo(f"secret:     {secret}")


@gateways.command("finish-rotation")
def finish_rotation(gateway: Annotated[str, typer.Argument(help="Gateway id.")]) -> None:
    """Stop accepting the old secret."""
    with hub_session() as (_hub, session):
        gw = gateway_service.finish_rotation(session, gateway, actor=CLI_ACTOR)
        typer.echo(f"old secret of {gw.id} is no longer accepted")


@gateways.command("set-api")
def set_api(
    gateway: Annotated[str, typer.Argument(help="Gateway id.")],
    api_url: Annotated[str, typer.Option(help="Base URL of the gateway's REST API.")],
    api_key: Annotated[str | None, typer.Option(envvar="VB_GATEWAY_API_KEY", help="API key.")] = None,
) -> None:
    """Configure the REST API used by `sync`."""
    with hub_session() as (hub, session):
        # The SSRF rule of practice URLs; `sync` checks the addresses again when it connects.
        check_outbound_url(api_url, hub.settings, field="api_url", resolver=hub.resolver)
        gateway_service.set_api(session, hub.sealer, gateway, api_base_url=api_url, api_key=api_key, actor=CLI_ACTOR)
        typer.echo("ok")


def _when(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("ISO 8601, e.g. 2025-03-01T00:00:00+00:00", param_hint=option) from None
    if value.tzinfo is None:
        raise typer.BadParameter("give a UTC offset, e.g. +00:00", param_hint=option)
    return value


@gateways.command("sync")
def sync(
    gateway: Annotated[str, typer.Option("--gateway", help="Gateway id.")],
    since: Annotated[str | None, typer.Option(help="Window start, ISO 8601 with offset (default: last sync).")] = None,
    until: Annotated[str | None, typer.Option(help="Window end, ISO 8601 with offset (default: now).")] = None,
) -> None:
    """Pull readings measured in [since, until) from the gateway's REST API. Safe to repeat."""
    from vitalbridge.cli.common import open_hub
    from vitalbridge.devices.sync import sync_gateway

    hub = open_hub()
    try:
        start = _when(since, "--since") if since else None
        if start is None:
            with hub.sessions() as session:
                start = gateway_service.get_gateway(session, gateway).synced_until
            if start is None:
                raise typer.BadParameter("no earlier sync to continue from; give --since", param_hint="--since")
        end = _when(until, "--until") if until else utcnow()
        summary = sync_gateway(hub, gateway, start, end)
    except VitalbridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        hub.close()
    typer.echo(json.dumps(summary.__dict__))
    if summary.quarantined:
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.add_typer(gateways, name="gateways")
    app.add_typer(gateways, name="gateway", hidden=True)
