"""HTTP routes for SMART on FHIR (SPEC §3 "Hub API for EHR auth"): the JWKS, the standalone
launch (authorize, callback), per-practice status and the two connection tests.

Handlers that call the EHR load what they need in a short transaction of their own and close it
before any network call (no request-wide ``SessionDep``): an open SQLite write transaction
would block the token cache and audit writes the call itself needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from vitalbridge.api.deps import HubDep, open_route, require_role
from vitalbridge.api.types import REF_PATTERN
from vitalbridge.ehr.client import ehr_client
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.errors import ConfigurationError, Conflict, FieldError, NotFound, UpstreamError, ValidationFailed
from vitalbridge.runtime import Hub
from vitalbridge.smart import keys
from vitalbridge.smart.connection_check import check_connection
from vitalbridge.smart.services import JWKS_PATH, ORG_JWKS_PATH, smart_for
from vitalbridge.smart.status import check_jwt, population_sync_in_use, practice_status, refresh_standalone
from vitalbridge.tenancy import service
from vitalbridge.tenancy.hints import edit_hint
from vitalbridge.tenancy.models import Organization, Role
from vitalbridge.tenancy.service import Principal

# RFC 6749 §3.3: scope tokens are printable ASCII without spaces, joined by single spaces.
SCOPE_PATTERN = r"^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$"

jwks_router = APIRouter(tags=["smart"])
router = APIRouter(prefix="/api/v1/ecw", tags=["smart"])

AdminDep = Annotated[Principal, Depends(require_role(Role.admin))]
IntegrationDep = Annotated[Principal, Depends(require_role(Role.integration))]
AnyRoleDep = Annotated[Principal, Depends(require_role(Role.clinician, Role.integration))]


def _jwks_response(hub: Hub, document: dict[str, Any]) -> JSONResponse:
    return JSONResponse(document, headers={"Cache-Control": f"public, max-age={hub.settings.jwks_max_age_s}"})


@jwks_router.get(JWKS_PATH, summary="The hub-wide public signing keys (JWK Set; single-tenant hubs)")
def jwks(hub: HubDep) -> JSONResponse:
    """Public RSA parameters only (kty, n, e, kid, alg, use) of the hub-wide key set. On a hub with
    more than one organization, register each organization's own URL instead (``jwks_url`` of
    the practice): this set is shared by every organization."""
    with hub.sessions() as session, session.begin():
        document = keys.published_jwks(session)
    return _jwks_response(hub, document)


@jwks_router.get(ORG_JWKS_PATH, summary="One organization's public signing keys (JWK Set)")
def organization_jwks(key_set_id: Annotated[str, Path(pattern=REF_PATTERN)], hub: HubDep) -> JSONResponse:
    """The key set an organization's practices sign with; register this URL with their EHR.
    Only this organization's keys are listed, so a registration naming it accepts no other
    organization's client assertions. The first key is created on first use."""
    with hub.sessions() as session, session.begin():
        if session.get(Organization, key_set_id) is None:
            raise NotFound("no such key set")
        # Published before any assertion is signed with it: the EHR may fetch at registration.
        keys.ensure_signing_key(session, hub.sealer, key_size=hub.settings.key_size, organization_id=key_set_id)
        document = keys.published_jwks(session, key_set_id)
    return _jwks_response(hub, document)


def _connection(hub: Hub, principal: Principal, ref: str | None) -> PracticeConnection:
    """The caller's practice by id or code; with one practice only, ``practice`` may be omitted."""
    with hub.sessions() as session, session.begin():
        if ref:
            return PracticeConnection.of(service.get_practice(session, principal.organization_id, ref))
        practices = service.list_practices(session, principal.organization_id)
        if len(practices) == 1:
            return PracticeConnection.of(practices[0])
    raise ValidationFailed(
        "name the practice (id or practice code)",
        [FieldError(("query", "practice"), "required when the organization has more than one practice")],
    )


class AuthorizeOut(BaseModel):
    authorization_url: str
    state: str
    expires_at: str


@router.get("/auth/authorize/", response_model=AuthorizeOut, summary="Start a standalone launch (PKCE)")
def authorize(
    hub: HubDep,
    principal: AdminDep,
    practice: Annotated[str | None, Query(pattern=REF_PATTERN, description="Practice id or code")] = None,
    scope: Annotated[
        str | None,
        Query(pattern=SCOPE_PATTERN, max_length=1000, description="Space-separated scopes (default: derived)"),
    ] = None,
) -> AuthorizeOut:
    conn = _connection(hub, principal, practice)
    actor = f"user:{principal.user_id}" if principal.user_id else f"token:{principal.token_id}"
    try:
        started = smart_for(hub).standalone.start(conn, requested_by=actor, scopes=scope.split() if scope else None)
    except UpstreamError as exc:
        # Only reached without an authorize_url: the practice is not ready for a launch.
        raise Conflict(
            f"cannot start a standalone launch for practice {conn.practice_code}: {exc}; "
            "set the practice's authorize URL or correct its FHIR base URL with "
            + edit_hint("--authorize-url URL", '"authorize_url"')
        ) from None
    return AuthorizeOut(
        authorization_url=started.authorization_url,
        state=started.state,
        expires_at=started.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


@router.get(
    "/auth/callback/",
    summary="Redirect URI of the standalone launch (no hub token)",
    dependencies=[Depends(open_route("the EHR redirects the browser here; the single-use state authenticates it"))],
)
def callback(
    hub: HubDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> dict[str, Any]:
    result = smart_for(hub).standalone.complete(
        code=code, state=state, error=error, error_description=error_description
    )
    return {
        "status": "connected",
        "practice_id": result.practice_id,
        "practice": result.practice_code,
        "scope": result.scope,
        "expires_at": result.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "refresh_token_issued": result.refresh_token_issued,
    }


@router.get("/auth/status/", summary="EHR authentication status per practice")
def status(
    hub: HubDep,
    principal: AnyRoleDep,
    practice: Annotated[
        str | None, Query(pattern=REF_PATTERN, description="One practice (id or code); default all")
    ] = None,
) -> dict[str, Any]:
    """With ``practice``: that practice's status object. Without: ``{"practices": [...]}``."""
    with hub.sessions() as session, session.begin():
        if practice:
            found = service.get_practice(session, principal.organization_id, practice)
            return practice_status(session, found, settings=hub.settings)
        return {
            "practices": [
                practice_status(session, p, settings=hub.settings)
                for p in service.list_practices(session, principal.organization_id)
            ]
        }


class PracticeRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    practice: str | None = Field(
        default=None, pattern=REF_PATTERN, description="Practice id or code (optional with one practice)"
    )


def _checked(run: Callable[[], dict[str, Any]], conn: PracticeConnection) -> dict[str, Any]:
    """A connection test that ran reports its result, failure included, as 200 with ``status``:
    the EHR refusing or being down is the finding, not a fault of the hub (SPEC §3)."""
    try:
        return run()
    except (UpstreamError, ConfigurationError) as exc:
        return {"status": "error", "practice": conn.practice_code, **exc.as_problem()}


@router.post("/test/jwt/", summary="Get a backend-services token now")
def post_test_jwt(hub: HubDep, principal: IntegrationDep, body: PracticeRef | None = None) -> dict[str, Any]:
    conn = _connection(hub, principal, body.practice if body else None)
    return _checked(lambda: check_jwt(smart_for(hub), conn), conn)


class ConnectionTestIn(PracticeRef):
    population_sync: bool | None = Field(
        default=None,
        description="Also check Bulk Data $export (default: when the practice has run a population sync)",
    )


@router.post(
    "/test/connection/",
    summary="Token, scopes, CapabilityStatement interactions and one authenticated call, as findings",
)
def post_test_connection(
    hub: HubDep, principal: IntegrationDep, body: ConnectionTestIn | None = None
) -> dict[str, Any]:
    conn = _connection(hub, principal, body.practice if body else None)
    with hub.sessions() as session:
        fhir_delivery, sync_in_use = population_sync_in_use(session, conn.id)
    population_sync = body.population_sync if body and body.population_sync is not None else sync_in_use
    return _checked(
        lambda: check_connection(ehr_client(hub), conn, fhir_delivery=fhir_delivery, population_sync=population_sync),
        conn,
    )


@router.post("/auth/refresh/", summary="Refresh the standalone (user) grant now and show the new token's lifetime")
def refresh(hub: HubDep, principal: IntegrationDep, body: PracticeRef | None = None) -> dict[str, Any]:
    """Forces a refresh_token grant (eCW rotates the refresh token: the new one is stored). A grant
    the EHR no longer honours answers ``{"status": "error", "error": "ehr_reauthorize", …}``."""
    conn = _connection(hub, principal, body.practice if body else None)
    return _checked(lambda: refresh_standalone(smart_for(hub), conn), conn)


@router.post("/auth/revoke/", summary="Disconnect the standalone grant (RFC 7009 revocation)")
def revoke(hub: HubDep, principal: AdminDep, body: PracticeRef | None = None) -> dict[str, Any]:
    conn = _connection(hub, principal, body.practice if body else None)
    actor = f"user:{principal.user_id}" if principal.user_id else f"token:{principal.token_id}"
    confirmed = smart_for(hub).standalone.revoke(conn, actor=actor)
    return {"status": "revoked", "practice": conn.practice_code, "confirmed_by_ehr": confirmed}
