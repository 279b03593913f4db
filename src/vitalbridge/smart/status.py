"""What ``GET /api/v1/ecw/auth/status/`` reports per practice (SPEC §3), and the token test behind
``POST /api/v1/ecw/test/jwt/`` (the connection test is ``connection_check``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.db.base import utcnow
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.settings import Settings
from vitalbridge.smart.connection_check import contexts_for
from vitalbridge.smart.keys import active_kid
from vitalbridge.smart.models import BackendAuthStatus, EhrToken, GrantKind, GrantStatus
from vitalbridge.smart.scopes import scope_warnings
from vitalbridge.smart.services import Smart, jwks_url, practice_jwks_url
from vitalbridge.smart.tokens import STANDALONE_KEY, scope_key
from vitalbridge.tenancy.hints import edit_hint
from vitalbridge.tenancy.models import (
    AuthMethod,
    DeliveryChannel,
    EhrAccess,
    KeySetScope,
    Practice,
    PracticeEnvironment,
)


def _iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def deployment_warnings(settings: Settings, practice: Practice) -> list[str]:
    """Things that break EHR registration although every local check passes."""
    warnings = []
    if not settings.public_url:
        warnings.append(
            "VB_PUBLIC_URL is not set: the JWKS URL and redirect URI use the listen address, which an EHR "
            "outside this machine cannot reach"
        )
    elif practice.environment is PracticeEnvironment.production and not settings.public_url.startswith("https://"):
        warnings.append("VB_PUBLIC_URL is not https: production EHRs fetch the JWKS only over TLS")
    if practice.auth_method is AuthMethod.private_key_jwt and practice.signing_key_set is KeySetScope.hub:
        # Migration path (issue 10): registrations from before per-organization key sets keep
        # working, but the hub-wide key set proves nothing about which organization signs.
        warnings.append(
            "this practice signs with the hub-wide key set (/.well-known/jwks.json), which every organization on "
            f"this hub shares: register {jwks_url(settings, practice.organization_id)} as the JWKS URL of client "
            "id the practice uses with the EHR, then switch with "
            + edit_hint("--key-set organization", '"signing_key_set": "organization"')
        )
    if practice.tenant_key is None or practice.client_claim_key is None:
        warnings.append(
            "this practice's FHIR base URL and practice code, or its token endpoint and client id, are also "
            "registered by an older practice on this hub; correct them with "
            + edit_hint("--fhir-base-url/--client-id", '"fhir_base_url"/"client_id"')
        )
    return warnings


def practice_status(session: Session, practice: Practice, *, settings: Settings) -> dict[str, Any]:
    conn = PracticeConnection.of(practice)
    jwks = practice_jwks_url(settings, conn)
    signing_kid = active_kid(session, conn.key_set_owner)
    backend = session.get(BackendAuthStatus, practice.id)
    grant = session.scalar(
        select(EhrToken).where(
            EhrToken.practice_id == practice.id,
            EhrToken.kind == GrantKind.standalone,
            EhrToken.scope_key == STANDALONE_KEY,
        )
    )

    credentials_problem: str | None = None
    if practice.auth_method is AuthMethod.private_key_jwt and signing_kid is None and conn.key_set_owner is None:
        # An organization's key set gets its first key on first use; the hub-wide one never does.
        credentials_problem = "the hub-wide key set has no signing key: run `vitalbridge keys generate`"
    elif practice.auth_method is AuthMethod.client_secret_basic and practice.client_secret_sealed is None:
        credentials_problem = "client_secret_basic is selected but no client secret is stored"
    last_failed = bool(
        backend is not None
        and backend.last_error
        and (
            backend.last_success_at is None
            or (backend.last_error_at is not None and backend.last_error_at > backend.last_success_at)
        )
    )
    jwt_reason = credentials_problem
    if jwt_reason is None and last_failed and backend is not None:
        jwt_reason = f"the last token request failed: {backend.last_error_detail or backend.last_error}"

    now = utcnow()
    oauth2_configured = False
    oauth2_reason: str | None
    if grant is None:
        oauth2_reason = "no user has authorized the standalone launch yet (GET /api/v1/ecw/auth/authorize/)"
    elif grant.status is GrantStatus.revoked:
        oauth2_reason = f"re-authorize: {grant.status_reason or 'the grant was revoked'}"
    elif grant.refresh_token_sealed is None and (grant.expires_at is None or grant.expires_at <= now):
        oauth2_reason = "re-authorize: the access token expired and there is no refresh token"
    else:
        oauth2_configured = True
        oauth2_reason = None

    # What the token in use was granted, against what was asked and what the hub's work needs.
    access = practice.ehr_access or EhrAccess.backend
    kind = GrantKind(access.value)
    in_use = (
        grant
        if kind is GrantKind.standalone
        else session.scalar(
            select(EhrToken).where(
                EhrToken.practice_id == practice.id,
                EhrToken.kind == GrantKind.backend,
                EhrToken.scope_key == scope_key(practice.scopes.split()),
            )
        )
    )
    granted = in_use.granted_scopes.split() if in_use is not None and in_use.granted_scopes else None
    requested = (
        practice.scopes.split() if kind is GrantKind.backend else (grant.requested_scopes.split() if grant else [])
    )
    warnings = deployment_warnings(settings, practice)
    if granted is not None:
        warnings += scope_warnings(
            requested,
            granted,
            contexts_for(kind),
            fhir_delivery=practice.delivery_channel is DeliveryChannel.fhir,
        )
    if kind is GrantKind.standalone and not oauth2_configured:
        warnings.append(f"EHR calls use the standalone grant, which is not usable: {oauth2_reason}")

    return {
        "practice_id": practice.id,
        "practice_code": practice.practice_code,
        "auth_method": practice.auth_method.value,
        "ehr_access": access.value,
        "jwt_configured": jwt_reason is None,
        "jwt_reason": jwt_reason,
        "jwt_last_success": _iso(backend.last_success_at) if backend else None,
        "jwt_last_error": backend.last_error if backend else None,
        "jwt_last_error_at": _iso(backend.last_error_at) if backend else None,
        "signing_kid": backend.last_kid if backend and backend.last_kid else signing_kid,
        "jwks_url": jwks,
        "signing_key_set": practice.signing_key_set.value,
        "oauth2_configured": oauth2_configured,
        "oauth2_reason": oauth2_reason,
        "oauth2_token_expires": _iso(grant.expires_at) if grant and grant.status is GrantStatus.active else None,
        "oauth2_authorized_by": grant.authorized_by if grant else None,
        "fhir_base_url": practice.fhir_base_url,
        "token_url": practice.token_url,
        "authorize_url": practice.authorize_url,
        "scopes": practice.scopes.split(),
        # None until a token was obtained; the test-connection call obtains one.
        "granted_scopes": granted,
        "warnings": warnings,
    }


def check_jwt(smart: Smart, conn: PracticeConnection) -> dict[str, Any]:
    """Get a backend-services token now (not from the cache); raises with a detailed error."""
    token = smart.backend.token(conn, force=True)
    return {
        "status": "success",
        "practice": conn.practice_code,
        "auth_method": conn.auth_method.value,
        "token_type": token.token_type,
        "expires_in": token.lifetime_s,
        "scope": token.scope,
        "kid": None
        if conn.auth_method is AuthMethod.client_secret_basic
        else smart.keyring.signing_key(conn.key_set_owner).kid,
    }


def refresh_standalone(smart: Smart, conn: PracticeConnection) -> dict[str, Any]:
    """Refresh the practice's user grant now (not from the cache); raises ``EhrReauthorize``."""
    token = smart.standalone.token(conn, force=True)
    return {
        "status": "refreshed",
        "practice": conn.practice_code,
        "ehr_access": conn.grant.value,
        "token_type": token.token_type,
        "expires_at": _iso(token.expires_at),
        "expires_in": token.lifetime_s,
        "scope": token.scope,
    }


def population_sync_in_use(session: Session, practice_id: str) -> tuple[bool, bool]:
    """(delivers over FHIR, has run a population sync): what the connection test must check."""
    from vitalbridge.patients.models import BulkSyncJob

    practice = session.get(Practice, practice_id)
    fhir = practice is None or practice.delivery_channel is DeliveryChannel.fhir
    used = session.scalar(select(BulkSyncJob.id).where(BulkSyncJob.practice_id == practice_id).limit(1))
    return fhir, used is not None
