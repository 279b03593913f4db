"""SMART standalone launch for a confidential client (SMART App Launch 2.0; RFC 6749 §4.1,
RFC 7636 PKCE ``S256``; SPEC §3 "Standalone launch").

``start`` creates a single-use ``state`` and a PKCE verifier, keeps the verifier sealed in the
database bound to that state, the practice and the caller, and returns the EHR's authorize URL.
``complete`` (the redirect URI's handler) burns the state — forged, replayed and expired states
are refused before anything reaches the EHR — and redeems the code with the verifier and the
practice's client authentication. Tokens are stored sealed; ``token`` renews them silently with
the refresh token, storing each rotated refresh token. A refresh the EHR refuses marks the grant
revoked with the reason: a normal state shown on the status page, never a crash.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from datetime import timedelta

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from vitalbridge import audit
from vitalbridge.crypto.sealing import Sealer
from vitalbridge.db.base import utcnow
from vitalbridge.db.locking import for_update
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.ehr.metrics import TOKEN_REQUESTS
from vitalbridge.ehr.ratelimit import RateLimiter
from vitalbridge.errors import BadRequest, EhrAuthError, EhrRateLimited, EhrReauthorize, NotFound, VitalbridgeError
from vitalbridge.smart.client_auth import ClientAuthenticator
from vitalbridge.smart.discovery import discover
from vitalbridge.smart.launch import (
    ERROR_CODE,
    VERIFIER_LENGTH,
    LaunchResult,
    LaunchStart,
    launch_scopes,
    state_digest,
)
from vitalbridge.smart.models import (
    ACCESS_TOKEN_PURPOSE,
    REFRESH_TOKEN_PURPOSE,
    VERIFIER_PURPOSE,
    EhrToken,
    GrantKind,
    GrantStatus,
    LaunchState,
)
from vitalbridge.smart.oauth import TokenContext, TokenResponse, post_revocation, post_token
from vitalbridge.smart.token_cache import TokenCache
from vitalbridge.smart.tokens import STANDALONE_KEY, AccessToken
from vitalbridge.tenancy.hints import edit_hint
from vitalbridge.tenancy.models import Practice

ACTOR = audit.Actor.service("smart")


class StandaloneFlow:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        sealer: Sealer,
        http: httpx.Client,
        authenticator: ClientAuthenticator,
        limiter: RateLimiter,
        cache: TokenCache,
        redirect_uri: str,
        jwks_url: Callable[[PracticeConnection], str],
        state_ttl_s: int = 600,
    ) -> None:
        self._sessions = sessions
        self._sealer = sealer
        self._http = http
        self._authenticator = authenticator
        self._limiter = limiter
        self.cache = cache
        self.redirect_uri = redirect_uri
        self._jwks_url = jwks_url
        self._state_ttl_s = state_ttl_s

    def __repr__(self) -> str:
        return "StandaloneFlow()"

    # -- authorize -----------------------------------------------------------------------------

    def authorize_endpoint(self, conn: PracticeConnection) -> str:
        if conn.authorize_url:
            return conn.authorize_url
        config = discover(self._http, conn.fhir_base_url, timeout=conn.request_timeout_s)
        if config.authorization_endpoint is None:
            raise EhrAuthError(
                f"practice {conn.practice_code} has no authorize_url and the EHR's SMART configuration names no "
                "authorization_endpoint; set the practice's authorize URL with "
                + edit_hint("--authorize-url URL", '"authorize_url"')
            )
        if config.code_challenge_methods_supported and "S256" not in config.code_challenge_methods_supported:
            raise EhrAuthError(f"the EHR of practice {conn.practice_code} does not support PKCE S256")
        return config.authorization_endpoint

    def start(self, conn: PracticeConnection, *, requested_by: str, scopes: Iterable[str] | None = None) -> LaunchStart:
        endpoint = self.authorize_endpoint(conn)
        scope = " ".join(scopes if scopes is not None else launch_scopes(conn.scopes))
        state = secrets.token_urlsafe(32)
        verifier = generate_token(VERIFIER_LENGTH)
        now = utcnow()
        expires_at = now + timedelta(seconds=self._state_ttl_s)
        url = prepare_grant_uri(
            endpoint,
            conn.client_id,
            "code",
            redirect_uri=self.redirect_uri,
            scope=scope,
            state=state,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
            # SMART App Launch: aud names the FHIR server the token is for.
            aud=conn.fhir_base_url,
        )
        with self._sessions() as session, session.begin():
            session.add(
                LaunchState(
                    state_hash=state_digest(state),
                    organization_id=conn.organization_id,
                    practice_id=conn.id,
                    requested_by=requested_by,
                    verifier_sealed=self._sealer.seal_text(verifier, VERIFIER_PURPOSE),
                    redirect_uri=self.redirect_uri,
                    scopes=scope,
                    token_url=conn.token_url,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            audit.record(
                session,
                action="smart.launch.start",
                outcome=audit.Outcome.success,
                actor=requested_by,
                organization_id=conn.organization_id,
                practice_id=conn.id,
                detail={"scopes": scope.split()},
            )
        return LaunchStart(authorization_url=str(url), state=state, expires_at=expires_at)

    # -- callback ------------------------------------------------------------------------------

    def _burn_state(self, state: str) -> tuple[LaunchState, PracticeConnection, str]:
        """Mark the state used (whatever happens next) and return it with its verifier."""
        problem: BadRequest | None = None
        now = utcnow()
        with self._sessions() as session, session.begin():
            row = session.scalar(
                for_update(session, select(LaunchState).where(LaunchState.state_hash == state_digest(state)))
            )
            if row is None:
                problem = BadRequest(
                    "unknown state: this authorization was not started by this hub (forged or altered link); "
                    "start again from GET /api/v1/ecw/auth/authorize/"
                )
            elif row.used_at is not None:
                problem = BadRequest(
                    "this state was already used: an authorization link works once; start again from "
                    "GET /api/v1/ecw/auth/authorize/"
                )
            elif row.expires_at <= now:
                problem = BadRequest(
                    f"this authorization expired ({self._state_ttl_s // 60} minutes allowed); start again from "
                    "GET /api/v1/ecw/auth/authorize/"
                )
            if row is not None and row.used_at is None:
                row.used_at = now
            audit.record(
                session,
                action="smart.launch.callback",
                outcome=audit.Outcome.denied if problem else audit.Outcome.success,
                actor=ACTOR,
                organization_id=row.organization_id if row else None,
                practice_id=row.practice_id if row else None,
                detail={"reason": problem.message.split(":")[0]} if problem else {},
            )
            if problem is None and row is not None:
                practice = session.get(Practice, row.practice_id)
                if practice is None:
                    problem = BadRequest("the practice of this authorization no longer exists")
                else:
                    verifier = self._sealer.open_text(row.verifier_sealed, VERIFIER_PURPOSE)
                    session.expunge(row)
                    return row, PracticeConnection.of(practice), verifier
        assert problem is not None
        raise problem

    def complete(
        self, *, code: str | None, state: str | None, error: str | None = None, error_description: str | None = None
    ) -> LaunchResult:
        if not state:
            raise BadRequest("the callback has no state parameter; start again from GET /api/v1/ecw/auth/authorize/")
        launch, conn, verifier = self._burn_state(state)
        if error:
            shown = error if ERROR_CODE.match(error) else "invalid_error_code"
            raise BadRequest(
                f"the EHR ended the authorization with {shown}"
                + (" (the user declined)" if shown == "access_denied" else "")
                + "; start again from GET /api/v1/ecw/auth/authorize/"
            )
        if not code:
            raise BadRequest("the callback has no code parameter")
        self._limiter.acquire(conn)
        auth = self._authenticator.for_practice(conn, launch.token_url)
        ctx = TokenContext(
            token_url=launch.token_url,
            grant_type="authorization_code",
            client_id=conn.client_id,
            auth_method=conn.auth_method,
            requested_scope=launch.scopes,
            kid=auth.kid,
            jwks_url=self._jwks_url(conn),
        )
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": launch.redirect_uri,
            "code_verifier": verifier,
        }
        started = time.perf_counter()
        try:
            response = post_token(self._http, form, auth, ctx, timeout=conn.request_timeout_s)
        except VitalbridgeError as exc:
            TOKEN_REQUESTS.labels("authorization_code", "failure").inc()
            self._audit_exchange(conn, exc, (time.perf_counter() - started) * 1000)
            raise
        TOKEN_REQUESTS.labels("authorization_code", "success").inc()
        with self._sessions() as session, session.begin():
            self.cache.save_standalone_grant(
                session,
                conn,
                response,
                requested_scopes=launch.scopes,
                authorized_by=launch.requested_by,
                token_url=launch.token_url,
            )
            audit.record(
                session,
                action="ehr.token",
                outcome=audit.Outcome.success,
                actor=launch.requested_by,
                organization_id=conn.organization_id,
                practice_id=conn.id,
                status_code=200,
                latency_ms=(time.perf_counter() - started) * 1000,
                detail={"grant_type": "authorization_code", "kind": GrantKind.standalone.value, "kid": auth.kid},
            )
        return LaunchResult(
            practice_id=conn.id,
            practice_code=conn.practice_code,
            scope=response.scope,
            expires_at=utcnow() + timedelta(seconds=response.expires_in),
            refresh_token_issued=response.refresh_token is not None,
        )

    def _audit_exchange(self, conn: PracticeConnection, exc: VitalbridgeError, latency_ms: float) -> None:
        with self._sessions() as session, session.begin():
            audit.record(
                session,
                action="ehr.token",
                outcome=audit.Outcome.failure,
                actor=ACTOR,
                organization_id=conn.organization_id,
                practice_id=conn.id,
                status_code=getattr(exc, "status_code", None),
                latency_ms=latency_ms,
                detail={
                    "grant_type": "authorization_code",
                    "kind": GrantKind.standalone.value,
                    "error": exc.error_code,
                    "oauth_error": getattr(exc, "oauth_error", None),
                },
            )

    # -- using the grant -----------------------------------------------------------------------

    def _refresh(self, conn: PracticeConnection, refresh_token: str | None) -> TokenResponse:
        if refresh_token is None:
            raise EhrAuthError(
                "the access token expired and the EHR issued no refresh token (request offline_access); "
                "a user must authorize again",
                oauth_error="invalid_grant",
            )
        self._limiter.acquire(conn)
        auth = self._authenticator.for_practice(conn, conn.token_url)
        ctx = TokenContext(
            token_url=conn.token_url,
            grant_type="refresh_token",
            client_id=conn.client_id,
            auth_method=conn.auth_method,
            requested_scope="",
            kid=auth.kid,
            jwks_url=self._jwks_url(conn),
        )
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        try:
            return post_token(self._http, form, auth, ctx, timeout=conn.request_timeout_s)
        except EhrRateLimited as exc:
            self._limiter.slow_down(conn.id, exc.retry_after, minute_window=exc.minute_window)
            raise

    def token(self, conn: PracticeConnection, *, force: bool = False) -> AccessToken:
        """The user-consented access token, refreshed silently (single-flight) when due.

        A grant that is gone (none yet, revoked, refresh refused) raises ``EhrReauthorize``: the
        one thing that fixes it is a user authorizing again, and callers show it that way.
        """
        try:
            return self.cache.get(
                conn,
                GrantKind.standalone,
                (),
                lambda refresh: self._refresh(conn, refresh),
                grant_type="refresh_token",
                force=force,
            )
        except EhrAuthError as exc:
            if exc.transient:
                raise
            raise EhrReauthorize(
                f"re-authorize practice {conn.practice_code}: {exc} (GET /api/v1/ecw/auth/authorize/)",
                status_code=exc.status_code,
                diagnostics=exc.diagnostics,
                oauth_error=exc.oauth_error or "invalid_grant",
            ) from None

    def invalidate(self, conn: PracticeConnection, token: AccessToken) -> bool:
        return self.cache.invalidate(conn, GrantKind.standalone, (), token.generation)

    # -- disconnecting -------------------------------------------------------------------------

    def revoke(self, conn: PracticeConnection, *, actor: str) -> bool:
        """Disconnect the practice's standalone grant: revoke it at the EHR (RFC 7009, endpoint
        from the SMART configuration) and forget it here. Returns whether the EHR confirmed."""
        with self._sessions() as session, session.begin():
            row = session.scalar(
                for_update(
                    session,
                    select(EhrToken).where(
                        EhrToken.practice_id == conn.id,
                        EhrToken.kind == GrantKind.standalone,
                        EhrToken.scope_key == STANDALONE_KEY,
                    ),
                )
            )
            if row is None:
                raise NotFound(f"practice {conn.practice_code} has no standalone authorization to revoke")
            if row.status is GrantStatus.revoked:
                return False
            sealed, purpose, hint = row.refresh_token_sealed, REFRESH_TOKEN_PURPOSE, "refresh_token"
            if sealed is None:
                sealed, purpose, hint = row.access_token_sealed, ACCESS_TOKEN_PURPOSE, "access_token"
            token = self._sealer.open_text(sealed, purpose) if sealed is not None else None
        confirmed = False
        error: VitalbridgeError | None = None
        started = time.perf_counter()
        if token is not None:
            try:
                endpoint = discover(self._http, conn.fhir_base_url, timeout=conn.request_timeout_s).revocation_endpoint
                if endpoint:
                    self._limiter.acquire(conn)
                    # OpenID Connect Core §9: the assertion's audience is the token endpoint,
                    # whichever endpoint of the authorization server it is presented to.
                    auth = self._authenticator.for_practice(conn, conn.token_url)
                    ctx = TokenContext(
                        token_url=endpoint,
                        grant_type="revocation",
                        client_id=conn.client_id,
                        auth_method=conn.auth_method,
                        requested_scope="",
                        kid=auth.kid,
                        jwks_url=self._jwks_url(conn),
                    )
                    post_revocation(self._http, {"token": token, "token_type_hint": hint}, auth, ctx)
                    confirmed = True
            except VitalbridgeError as exc:
                # Forgetting the grant locally still disconnects the hub; the EHR's copy expires.
                error = exc
        with self._sessions() as session, session.begin():
            row = session.scalar(
                for_update(
                    session,
                    select(EhrToken).where(
                        EhrToken.practice_id == conn.id,
                        EhrToken.kind == GrantKind.standalone,
                        EhrToken.scope_key == STANDALONE_KEY,
                    ),
                )
            )
            if row is not None:
                row.status = GrantStatus.revoked
                row.status_reason = f"disconnected by {actor}" + ("" if confirmed else " (not confirmed by the EHR)")
                row.access_token_sealed = None
                row.refresh_token_sealed = None
                row.expires_at = None
                row.renew_at = None
            audit.record(
                session,
                action="ehr.token.revoke",
                outcome=audit.Outcome.success if confirmed else audit.Outcome.failure,
                actor=actor,
                organization_id=conn.organization_id,
                practice_id=conn.id,
                latency_ms=(time.perf_counter() - started) * 1000,
                detail={"confirmed_by_ehr": confirmed, "error": error.error_code if error else None},
            )
        return confirmed
