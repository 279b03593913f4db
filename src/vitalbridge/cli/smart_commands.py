"""``vitalbridge keys|ecw`` and ``vitalbridge tokens clear``: SMART keys, EHR connection tests,
and the EHR token cache (SPEC §3, §10).

``tokens clear`` joins the existing ``tokens`` group (hub API tokens): it clears the cached *EHR*
access tokens, never hub API tokens, and says so in its help.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from vitalbridge.cli.common import hub_session
from vitalbridge.cli.tenancy_commands import tokens
from vitalbridge.smart import keys as keyring
from vitalbridge.smart.models import SigningKey

keys = typer.Typer(
    help="RS384 signing keys — an organization's key set (--org), published at /.well-known/jwks/{org id}.json, "
    "or the hub-wide set of a single-tenant hub (no --org), at /.well-known/jwks.json.",
    no_args_is_help=True,
)

OrgOption = Annotated[
    str | None, typer.Option("--org", help="Organization id or name: its key set (default: the hub-wide set).")
]


def _key_set(session: Any, org: str | None) -> str | None:
    from vitalbridge.tenancy import service

    return service.get_organization(session, org).id if org else None


ecw = typer.Typer(
    help="Check a practice's EHR connection (backend services or the standalone user grant).", no_args_is_help=True
)


def _iso(row: SigningKey, name: str) -> str:
    value = getattr(row, name)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


def _row(row: SigningKey) -> dict[str, Any]:
    return {
        "kid": row.kid,
        "state": row.state.value,
        "algorithm": row.algorithm,
        "key_size": row.key_size,
        "created_at": _iso(row, "created_at"),
        "activate_at": _iso(row, "activate_at"),
        "activated_at": _iso(row, "activated_at"),
        "retired_at": _iso(row, "retired_at"),
    }


@keys.command("generate")
def keys_generate(
    size: Annotated[int | None, typer.Option(help="RSA key size in bits (default VB_KEY_SIZE, at least 2048).")] = None,
    org: OrgOption = None,
) -> None:
    """Create a key set's first signing key and print its kid."""
    with hub_session() as (hub, session):
        owner = _key_set(session, org)
        row = keyring.generate_key(session, hub.sealer, key_size=size or hub.settings.key_size, organization_id=owner)
        typer.echo(row.kid)


@keys.command("import")
def keys_import(
    pem: Annotated[Path, typer.Argument(help="RSA private key, PEM (e.g. from `openssl genrsa 2048`).")],
    now: Annotated[bool, typer.Option("--now", help="Sign with it immediately when another key is active.")] = False,
    org: OrgOption = None,
) -> None:
    """Use an existing key pair (one already registered with an EHR); prints its kid."""
    with hub_session() as (hub, session):
        row = keyring.import_key(
            session,
            hub.sealer,
            pem.read_bytes(),
            grace_s=hub.settings.key_rotation_grace_s,
            immediate=now,
            organization_id=_key_set(session, org),
        )
        typer.echo(f"{row.kid}\t{row.state.value}")


@keys.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False, org: OrgOption = None
) -> None:
    """List a key set's keys: kid, state (next/active/previous/retired), size, dates."""
    with hub_session() as (_hub, session):
        rows = [_row(r) for r in keyring.list_keys(session, organization_id=_key_set(session, org))]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        when = f"activates {r['activate_at']}" if r["state"] == "next" else f"created {r['created_at']}"
        typer.echo(f"{r['kid']}\t{r['state']}\t{r['algorithm']}\t{r['key_size']}\t{when}")


@keys.command("rotate")
def keys_rotate(
    now: Annotated[
        bool, typer.Option("--now", help="Sign with the new key immediately (skip the grace period).")
    ] = False,
    size: Annotated[int | None, typer.Option(help="RSA key size in bits.")] = None,
    org: OrgOption = None,
) -> None:
    """Publish a new key beside the active one; it signs after VB_KEY_ROTATION_GRACE_S (or --now)."""
    with hub_session() as (hub, session):
        row = keyring.rotate(
            session,
            hub.sealer,
            key_size=size or hub.settings.key_size,
            grace_s=hub.settings.key_rotation_grace_s,
            immediate=now,
            organization_id=_key_set(session, org),
        )
        if row.state.value == "active":
            typer.echo(f"{row.kid}\tactive (signing now)")
        else:
            typer.echo(f"{row.kid}\tnext (signing from {_iso(row, 'activate_at')})")


@keys.command("retire")
def keys_retire(kid: str, org: OrgOption = None) -> None:
    """Remove a key that no longer signs from the JWKS (the active key cannot be retired)."""
    with hub_session() as (_hub, session):
        row = keyring.retire(session, kid, organization_id=_key_set(session, org))
        typer.echo(f"{row.kid}\tretired")


def _practice(org: str, practice: str) -> Any:
    from vitalbridge.ehr.connection import PracticeConnection
    from vitalbridge.tenancy import service

    with hub_session() as (_hub, session):
        organization = service.get_organization(session, org)
        return PracticeConnection.of(service.get_practice(session, organization.id, practice))


def _run_check(org: str, practice: str, which: str, population_sync: bool | None = None) -> None:
    from vitalbridge.cli.common import open_hub
    from vitalbridge.ehr.client import ehr_client
    from vitalbridge.errors import VitalbridgeError
    from vitalbridge.smart.connection_check import check_connection
    from vitalbridge.smart.services import smart_for
    from vitalbridge.smart.status import check_jwt, population_sync_in_use, refresh_standalone

    conn = _practice(org, practice)
    hub = open_hub()
    try:
        if which == "jwt":
            result = check_jwt(smart_for(hub), conn)
        elif which == "refresh":
            result = refresh_standalone(smart_for(hub), conn)
        else:
            with hub.sessions() as session:
                fhir_delivery, sync_in_use = population_sync_in_use(session, conn.id)
            result = check_connection(
                ehr_client(hub),
                conn,
                fhir_delivery=fhir_delivery,
                population_sync=sync_in_use if population_sync is None else population_sync,
            )
    except VitalbridgeError as exc:
        typer.echo(json.dumps({"status": "error", **exc.as_problem()}, indent=2))
        raise typer.Exit(1) from None
    finally:
        hub.close()
    typer.echo(json.dumps(result, indent=2))
    if result.get("status") == "error":
        raise typer.Exit(1)


@ecw.command("test-jwt")
def ecw_test_jwt(
    org: Annotated[str, typer.Option(help="Organization id or name.")],
    practice: Annotated[str, typer.Option(help="Practice id or code.")],
) -> None:
    """Get a backend-services token from the practice's EHR now; print its metadata or the error."""
    _run_check(org, practice, "jwt")


@ecw.command("test-connection")
def ecw_test_connection(
    org: Annotated[str, typer.Option(help="Organization id or name.")],
    practice: Annotated[str, typer.Option(help="Practice id or code.")],
    population_sync: Annotated[
        bool | None,
        typer.Option(
            "--population-sync/--no-population-sync",
            help="Also check Bulk Data $export (default: when the practice has run a population sync).",
        ),
    ] = None,
) -> None:
    """Get a token, compare granted with requested scopes, check the interactions the hub uses in
    the CapabilityStatement, make one authenticated call; print each finding. Exit 1 on an error."""
    _run_check(org, practice, "connection", population_sync)


@ecw.command("refresh")
def ecw_refresh(
    org: Annotated[str, typer.Option(help="Organization id or name.")],
    practice: Annotated[str, typer.Option(help="Practice id or code.")],
) -> None:
    """Refresh the practice's standalone (user) grant now; print the new token's lifetime, or the
    error ("re-authorize" when the EHR no longer honours the grant). Exit 1 on an error."""
    _run_check(org, practice, "refresh")


@ecw.command("status")
def ecw_status(
    org: Annotated[str, typer.Option(help="Organization id or name.")],
    practice: Annotated[str | None, typer.Option(help="Practice id or code (default: all).")] = None,
) -> None:
    """The same per-practice report as GET /api/v1/ecw/auth/status/."""
    from vitalbridge.smart.status import practice_status
    from vitalbridge.tenancy import service

    with hub_session() as (hub, session):
        organization = service.get_organization(session, org)
        chosen = (
            [service.get_practice(session, organization.id, practice)]
            if practice
            else service.list_practices(session, organization.id)
        )
        report = [practice_status(session, p, settings=hub.settings) for p in chosen]
    typer.echo(json.dumps(report[0] if practice else {"practices": report}, indent=2))


def tokens_clear(
    org: Annotated[str | None, typer.Option(help="Organization id or name (with --practice).")] = None,
    practice: Annotated[str | None, typer.Option(help="Only this practice (id or code).")] = None,
) -> None:
    """Clear cached EHR access tokens (all, or one practice's); hub API tokens are not touched.

    The next EHR call fetches a fresh token. Standalone (user) grants keep their refresh token.
    """
    from vitalbridge.cli.common import open_hub
    from vitalbridge.smart.services import smart_for
    from vitalbridge.tenancy import service

    if practice and not org:
        raise typer.BadParameter("--practice needs --org", param_hint="--org")
    ids: list[str] | None = None
    if practice and org:
        with hub_session() as (_hub, session):
            organization = service.get_organization(session, org)
            ids = [service.get_practice(session, organization.id, practice).id]
    elif org:
        with hub_session() as (_hub, session):
            organization = service.get_organization(session, org)
            ids = [p.id for p in service.list_practices(session, organization.id)]
    hub = open_hub()
    try:
        count = smart_for(hub).cache.clear(ids)
    finally:
        hub.close()
    typer.echo(f"cleared {count} cached EHR token(s)")


def register(app: typer.Typer) -> None:
    app.add_typer(keys, name="keys")
    app.add_typer(ecw, name="ecw")
    tokens.command("clear")(tokens_clear)
