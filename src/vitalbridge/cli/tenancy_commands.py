"""``vitalbridge orgs|users|tokens|practices``: scriptable tenant administration.

Changes to users and tokens are written to the audit trail with the operator's login as actor.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from vitalbridge.audit import Outcome, record
from vitalbridge.cli.common import hub_session, operator
from vitalbridge.tenancy import service
from vitalbridge.tenancy.models import AuthMethod, DeliveryChannel, PracticeEnvironment, Role
from vitalbridge.tenancy.schemas import PracticeIn, PracticeOut

orgs = typer.Typer(help="Organizations (RPM customers).", no_args_is_help=True)
tokens = typer.Typer(help="Hub API tokens.", no_args_is_help=True)
users = typer.Typer(help="Users of an organization.", no_args_is_help=True)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


practices = typer.Typer(help="Practices, one EHR tenant each.", no_args_is_help=True)


@orgs.command("create")
def orgs_create(name: str) -> None:
    """Create an organization and print its id."""
    with hub_session() as (_hub, session):
        org = service.create_organization(session, name)
        typer.echo(org.id)


@orgs.command("list")
def orgs_list() -> None:
    """List organizations as `id<TAB>name`."""
    from sqlalchemy import select

    from vitalbridge.tenancy.models import Organization

    with hub_session() as (_hub, session):
        for org in session.scalars(select(Organization).order_by(Organization.created_at)):
            typer.echo(f"{org.id}\t{org.name}")


@tokens.command("create")
def tokens_create(
    org: Annotated[str, typer.Option(help="Organization id or name.")],
    role: Annotated[Role, typer.Option(help="What the token may do.")] = Role.admin,
    name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "",
    expires_in_days: Annotated[int | None, typer.Option(help="Expire after this many days.")] = None,
) -> None:
    """Create an API token and print it. It is shown once and stored only as a hash."""
    with hub_session() as (_hub, session):
        organization = service.get_organization(session, org)
        expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
        row, raw = service.create_api_token(session, organization.id, role, name=name, expires_at=expires)
        record(
            session,
            action="token.created",
            outcome=Outcome.success,
            actor=operator(),
            organization_id=organization.id,
            resource_type="ApiToken",
            resource_ids=[row.id],
        )
        typer.echo(raw)


@tokens.command("list")
def tokens_list(org: Annotated[str, typer.Option(help="Organization id or name.")]) -> None:
    """List tokens as `id  prefix  role  created  expires  last_used  revoked  name` (never the token)."""
    with hub_session() as (_hub, session):
        organization = service.get_organization(session, org)
        for t in service.list_api_tokens(session, organization.id):
            typer.echo(
                "\t".join(
                    [
                        t.id,
                        t.prefix,
                        t.role.value,
                        _when(t.created_at),
                        _when(t.expires_at),
                        _when(t.last_used_at),
                        _when(t.revoked_at),
                        t.name,
                    ]
                )
            )


@tokens.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="Token id (from `tokens list`).")],
    org: Annotated[str, typer.Option(help="Organization id or name.")],
) -> None:
    """Revoke a token: it is refused from the next request on."""
    with hub_session() as (_hub, session):
        organization = service.get_organization(session, org)
        row = service.revoke_api_token(session, organization.id, token_id)
        record(
            session,
            action="token.revoked",
            outcome=Outcome.success,
            actor=operator(),
            organization_id=organization.id,
            resource_type="ApiToken",
            resource_ids=[row.id],
        )
        typer.echo(f"revoked {row.id}")


@users.command("add")
def users_add(
    org: Annotated[str, typer.Option(help="Organization id or name.")],
    email: Annotated[str, typer.Option(help="Login email, unique across the hub.")],
    role: Annotated[Role, typer.Option(help="What the user may do.")] = Role.clinician,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
) -> None:
    """Add a user to an organization and print its id."""
    import re

    from vitalbridge.tenancy.schemas import EMAIL_PATTERN

    if not re.match(EMAIL_PATTERN, email):
        raise typer.BadParameter("not an email address", param_hint="--email")
    with hub_session() as (_hub, session):
        organization = service.get_organization(session, org)
        user = service.create_user(session, organization.id, email, role, name)
        record(
            session,
            action="user.created",
            outcome=Outcome.success,
            actor=operator(),
            organization_id=organization.id,
            resource_type="User",
            resource_ids=[user.id],
        )
        typer.echo(user.id)


@users.command("list")
def users_list(org: Annotated[str, typer.Option(help="Organization id or name.")]) -> None:
    """List users as `id  email  role  created  display name`."""
    with hub_session() as (_hub, session):
        organization = service.get_organization(session, org)
        for u in service.list_users(session, organization.id):
            typer.echo("\t".join([u.id, u.email, u.role.value, _when(u.created_at), u.display_name]))


@practices.command("add")
def practices_add(
    org: Annotated[str, typer.Option(help="Organization id or name.")],
    code: Annotated[str, typer.Option("--code", help="eCW practice code, e.g. JAFJCD.")],
    fhir_base_url: Annotated[str, typer.Option(help="FHIR R4 base, e.g. https://…/fhir/r4/JAFJCD.")],
    token_url: Annotated[str, typer.Option(help="OAuth token endpoint.")],
    client_id: Annotated[str, typer.Option(help="Client id registered with the EHR.")],
    authorize_url: Annotated[str | None, typer.Option(help="OAuth authorize endpoint.")] = None,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    auth_method: Annotated[AuthMethod, typer.Option(help="Token endpoint authentication.")] = (
        AuthMethod.private_key_jwt
    ),
    client_secret: Annotated[
        str | None, typer.Option(envvar="VB_PRACTICE_CLIENT_SECRET", help="For client_secret_basic.")
    ] = None,
    scopes: Annotated[str, typer.Option(help="Space-separated scopes.")] = (
        "system/Patient.read system/Observation.write"
    ),
    rate_limit_per_minute: Annotated[int, typer.Option(help="EHR calls per minute, token calls included.")] = 250,
    environment: Annotated[PracticeEnvironment, typer.Option()] = PracticeEnvironment.sandbox,
    channel: Annotated[DeliveryChannel, typer.Option(help="Delivery channel.")] = DeliveryChannel.fhir,
) -> None:
    """Register a practice and print its id."""
    from pydantic import ValidationError

    try:
        data = PracticeIn.model_validate(
            {
                "practice_code": code,
                "name": name,
                "environment": environment,
                "fhir_base_url": fhir_base_url,
                "token_url": token_url,
                "authorize_url": authorize_url,
                "client_id": client_id,
                "auth_method": auth_method,
                "client_secret": client_secret,
                "scopes": scopes.split(),
                "rate_limit_per_minute": rate_limit_per_minute,
                "delivery_channel": channel,
            }
        )
    except ValidationError as exc:
        for err in exc.errors():
            typer.echo(f"error: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}", err=True)
        raise typer.Exit(2) from None
    with hub_session() as (hub, session):
        organization = service.get_organization(session, org)
        practice = service.add_practice(session, organization.id, data, hub.sealer, hub.settings)
        typer.echo(practice.id)


@practices.command("list")
def practices_list(
    org: Annotated[str, typer.Option(help="Organization id or name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List an organization's practices."""
    with hub_session() as (_hub, session):
        organization = service.get_organization(session, org)
        rows = [PracticeOut.of(p) for p in service.list_practices(session, organization.id)]
        if as_json:
            typer.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
            return
        for r in rows:
            typer.echo(f"{r.id}\t{r.practice_code}\t{r.environment.value}\t{r.auth_method.value}\t{r.fhir_base_url}")


def register(app: typer.Typer) -> None:
    app.add_typer(orgs, name="orgs")
    app.add_typer(users, name="users")
    app.add_typer(tokens, name="tokens")
    app.add_typer(practices, name="practices")
