"""``vitalbridge orgs|users|tokens|practices``: scriptable tenant administration.

Changes to users and tokens are written to the audit trail with the operator's login as actor.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, NoReturn

import typer

from vitalbridge.audit import Outcome, record
from vitalbridge.cli.common import hub_session, operator
from vitalbridge.tenancy import service
from vitalbridge.tenancy.models import AuthMethod, DeliveryChannel, EhrAccess, KeySetScope, PracticeEnvironment, Role
from vitalbridge.tenancy.schemas import PracticeIn, PracticeOut, PracticePatch

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
    email: Annotated[str, typer.Option(help="Login email, unique within the organization.")],
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
    key_set: Annotated[
        KeySetScope,
        typer.Option(help="private_key_jwt signing keys: the organization's own (default) or the hub-wide set."),
    ] = KeySetScope.organization,
    ehr_access: Annotated[
        EhrAccess,
        typer.Option(help="Token for EHR calls: backend services, or a user's standalone (consent) grant."),
    ] = EhrAccess.backend,
) -> None:
    """Register a practice and print its id (register `practices list --json`'s jwks_url with the EHR)."""
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
                "signing_key_set": key_set,
                "ehr_access": ehr_access,
            }
        )
    except ValidationError as exc:
        _invalid(exc)
    with hub_session() as (hub, session):
        organization = service.get_organization(session, org)
        practice = service.add_practice(session, organization.id, data, hub.sealer, hub.settings, resolver=hub.resolver)
        record(
            session,
            action="practice.created",
            outcome=Outcome.success,
            actor=operator(),
            organization_id=organization.id,
            practice_id=practice.id,
            resource_type="Practice",
            resource_ids=[practice.id],
        )
        typer.echo(practice.id)


def _invalid(exc: Exception) -> NoReturn:
    from pydantic import ValidationError

    assert isinstance(exc, ValidationError)
    for err in exc.errors():
        # The field and the rule, never the submitted value (it may be a secret).
        where = ".".join(str(p) for p in err["loc"]) or "body"
        typer.echo(f"error: {where}: {err['msg']}", err=True)
    raise typer.Exit(2)


@practices.command("edit")
def practices_edit(
    practice: Annotated[str, typer.Argument(help="Practice id or code.")],
    org: Annotated[str, typer.Option(help="Organization id or name.")],
    code: Annotated[str | None, typer.Option("--code", help="New practice code.")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    environment: Annotated[PracticeEnvironment | None, typer.Option()] = None,
    fhir_base_url: Annotated[str | None, typer.Option(help="FHIR R4 base URL.")] = None,
    token_url: Annotated[str | None, typer.Option(help="OAuth token endpoint.")] = None,
    authorize_url: Annotated[str | None, typer.Option(help="OAuth authorize endpoint ('' clears it).")] = None,
    client_id: Annotated[str | None, typer.Option(help="Client id registered with the EHR.")] = None,
    auth_method: Annotated[AuthMethod | None, typer.Option(help="Token endpoint authentication.")] = None,
    client_secret_stdin: Annotated[
        bool, typer.Option("--client-secret-stdin", help="Read a new client secret from standard input.")
    ] = False,
    scopes: Annotated[str | None, typer.Option(help="Space-separated scopes (replace the current ones).")] = None,
    rate_limit_per_minute: Annotated[int | None, typer.Option(help="EHR calls per minute.")] = None,
    channel: Annotated[DeliveryChannel | None, typer.Option(help="Delivery channel.")] = None,
    hl7_sending_facility: Annotated[
        str | None, typer.Option(help="MSH-4 namespace id of the practice's ADT feed ('' clears it).")
    ] = None,
    mrn_system: Annotated[str | None, typer.Option(help="Identifier system of MRNs ('' clears it).")] = None,
    key_set: Annotated[
        KeySetScope | None, typer.Option(help="Sign with the organization's key set or the hub-wide one.")
    ] = None,
    ehr_access: Annotated[
        EhrAccess | None,
        typer.Option(help="Token for EHR calls: backend services, or a user's standalone (consent) grant."),
    ] = None,
) -> None:
    """Change a practice's registration (same rules as PATCH /api/v1/practices/{id}); prints it as JSON.

    Only the options given change; the client secret is write-only (read from stdin, never printed).
    """
    from pydantic import ValidationError

    given: dict[str, object] = {
        "practice_code": code,
        "name": name,
        "environment": environment,
        "fhir_base_url": fhir_base_url,
        "token_url": token_url,
        "client_id": client_id,
        "auth_method": auth_method,
        "scopes": scopes.split() if scopes is not None else None,
        "rate_limit_per_minute": rate_limit_per_minute,
        "delivery_channel": channel,
        "signing_key_set": key_set,
        "ehr_access": ehr_access,
    }
    body = {k: v for k, v in given.items() if v is not None}
    # For the optional fields an empty string clears the value.
    for field, value in (
        ("authorize_url", authorize_url),
        ("hl7_sending_facility", hl7_sending_facility),
        ("mrn_system", mrn_system),
    ):
        if value is not None:
            body[field] = value or None
    if client_secret_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            raise typer.BadParameter("no secret on standard input", param_hint="--client-secret-stdin")
        body["client_secret"] = secret
    if not body:
        raise typer.BadParameter("nothing to change: give at least one option", param_hint="PRACTICE")
    try:
        patch = PracticePatch.model_validate(body)
    except ValidationError as exc:
        _invalid(exc)
    with hub_session() as (hub, session):
        organization = service.get_organization(session, org)
        row, changed = service.update_practice(
            session, organization.id, practice, patch, hub.sealer, hub.settings, resolver=hub.resolver
        )
        record(
            session,
            action="practice.updated",
            outcome=Outcome.success,
            actor=operator(),
            organization_id=organization.id,
            practice_id=row.id,
            resource_type="Practice",
            resource_ids=[row.id],
            detail={"fields": sorted(changed)},
        )
        out = PracticeOut.of(row, base_url=hub.settings.base_url)
    typer.echo(json.dumps(out.model_dump(mode="json"), indent=2))


@practices.command("list")
def practices_list(
    org: Annotated[str, typer.Option(help="Organization id or name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List an organization's practices."""
    with hub_session() as (hub, session):
        organization = service.get_organization(session, org)
        rows = [
            PracticeOut.of(p, base_url=hub.settings.base_url) for p in service.list_practices(session, organization.id)
        ]
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
