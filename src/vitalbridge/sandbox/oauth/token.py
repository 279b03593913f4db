"""``POST /oauth/oauth2/token`` (RFC 6749 §3.2, §4.1.3, §4.4, §6; RFC 7636 §4.6; SMART Backend
Services; SPEC §3).

Grants: ``client_credentials`` (system/ scopes only, confidential clients), ``authorization_code``
(PKCE S256 verified, redirect_uri and client bound to the code) and ``refresh_token`` (rotated
on every use when the profile's ``single_use_refresh`` is on, as eCW does; otherwise the same
refresh token stays valid and none is returned, RFC 6749 §6). Backend-services tokens last the
profile's ``backend_token_lifetime_s`` (300 s on eCW). The request is counted against the
practices it concerns before the client is verified, because eCW counts every token call against
the practice's 250/min budget.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from vitalbridge.sandbox.errors import (
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from vitalbridge.sandbox.oauth.client_auth import authenticate_client, presented_client_id
from vitalbridge.sandbox.oauth.clients import RegisteredClient
from vitalbridge.sandbox.oauth.scopes import REFRESH_SCOPES, Context, parse_resource_scope
from vitalbridge.sandbox.oauth.tokens import AccessToken, Grant
from vitalbridge.sandbox.responses import oauth_json
from vitalbridge.sandbox.state import FHIR_PREFIX, TOKEN_PATH, SandboxState, issuer, sandbox_state, token_url

router = APIRouter()

GRANT_TYPES = ("client_credentials", "authorization_code", "refresh_token")


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body; each parameter at most once (RFC 6749 §3.2)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise InvalidRequest("the body is not UTF-8") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise InvalidRequest(f"parameter {name!r} appears more than once")
        form[name] = value
    return form


def practice_from_aud(request: Request, state: SandboxState, aud: str) -> str | None:
    prefix = f"{issuer(request)}{FHIR_PREFIX}/"
    if not aud.startswith(prefix):
        return None
    practice = aud[len(prefix) :].rstrip("/")
    return practice if practice in state.patients else None


def _practices_charged(
    request: Request, state: SandboxState, form: Mapping[str, str], client_id: str | None
) -> list[str]:
    """Which practices' budgets a token request spends (documented in docs/sandbox.md)."""
    if form.get("aud"):
        practice = practice_from_aud(request, state, form["aud"])
        if practice is not None:
            return [practice]
    if form.get("grant_type") == "authorization_code" and form.get("code"):
        code = state.tokens.peek_code(form["code"])
        if code is not None:
            return [code.practice]
    if form.get("grant_type") == "refresh_token" and form.get("refresh_token"):
        grant = state.tokens.grant_by_refresh(form["refresh_token"])
        if grant is not None:
            return [grant.practice]
    client = state.clients.get(client_id) if client_id else None
    return sorted(client.practices) if client is not None else []


@router.post(TOKEN_PATH)
async def token_endpoint(request: Request) -> Response:
    state = sandbox_state(request)
    try:
        body = await _token(request, state)
    except OAuthError as exc:
        state.stats.count("token_errors", exc.error)
        raise
    state.stats.count("tokens_issued")
    return oauth_json(body)


async def _token(request: Request, state: SandboxState) -> dict[str, Any]:
    form: dict[str, str] = {}
    try:
        form = await read_form(request)
    finally:
        # Counted even when the body is unreadable: every call reaches eCW's counters.
        client_id = presented_client_id(request, form)
        state.stats.token_request(client_id, form.get("grant_type", ""))
    practices = _practices_charged(request, state, form, client_id)
    wait = state.limiter.acquire(practices)
    state.stats.charged(practices)
    if wait is not None:
        for p in practices:
            state.stats.count("rate_limited_by_practice", p)
        raise TemporarilyUnavailable(
            f"rate limit of {state.config.rate_limit_per_minute} calls/min reached for practice {', '.join(practices)}",
            headers=state.retry_after(wait),
        )
    return await _grant(request, state, form, form.get("grant_type", ""))


async def _grant(request: Request, state: SandboxState, form: Mapping[str, str], grant_type: str) -> dict[str, Any]:
    if not grant_type:
        raise InvalidRequest("grant_type is missing")
    if grant_type not in GRANT_TYPES:
        raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported; use one of {', '.join(GRANT_TYPES)}")
    client = await authenticate_client(request, form, state, token_url(request))
    if grant_type == "client_credentials":
        return _client_credentials(request, state, form, client)
    if grant_type == "authorization_code":
        return _authorization_code(state, form, client)
    return _refresh(state, form, client)


def _requested(form: Mapping[str, str]) -> list[str]:
    return list(dict.fromkeys(form.get("scope", "").split()))


def _client_credentials(
    request: Request, state: SandboxState, form: Mapping[str, str], client: RegisteredClient
) -> dict[str, Any]:
    if not client.confidential:
        raise UnauthorizedClient("public clients cannot use client_credentials; register a JWKS or a secret")
    system_scopes = [s for s in client.scopes if _context(s) is Context.system]
    requested = _requested(form) or system_scopes
    if not requested:
        raise InvalidScope(f"client {client.client_id!r} has no system/ scopes registered")
    not_system = [s for s in requested if _context(s) is not Context.system]
    if not_system:
        raise InvalidScope(f"client_credentials grants only system/ scopes; not allowed: {' '.join(not_system)}")
    _subset(requested, client)
    practices = client.practices
    if form.get("aud"):
        practice = practice_from_aud(request, state, form["aud"])
        if practice is None or practice not in client.practices:
            raise InvalidRequest(f"aud {form['aud']!r} is not the FHIR base of a practice that activated this client")
        practices = frozenset({practice})
    return _issue(state, client, practices, tuple(requested))


def _authorization_code(state: SandboxState, form: Mapping[str, str], client: RegisteredClient) -> dict[str, Any]:
    raw_code, redirect_uri, verifier = form.get("code"), form.get("redirect_uri"), form.get("code_verifier")
    if not raw_code:
        raise InvalidRequest("code is missing")
    if not redirect_uri:
        raise InvalidRequest("redirect_uri is missing; send the one used in the authorization request")
    if not verifier:
        raise InvalidRequest("code_verifier is missing (PKCE is required)")
    code = state.tokens.redeem_code(raw_code)
    if code.client_id != client.client_id:
        raise InvalidGrant("the authorization code was issued to another client")
    if code.redirect_uri != redirect_uri:
        raise InvalidGrant("redirect_uri does not match the one in the authorization request")
    # RFC 7636 §4.6: BASE64URL(SHA256(verifier)) must equal the challenge.
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    if not hmac.compare_digest(challenge, code.code_challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge (S256)")
    grant = state.tokens.create_grant(code, state.config.refresh_token_lifetime_s)
    return _issue(state, client, frozenset({code.practice}), code.scopes, grant=grant)


def _refresh(state: SandboxState, form: Mapping[str, str], client: RegisteredClient) -> dict[str, Any]:
    raw = form.get("refresh_token")
    if not raw:
        raise InvalidRequest("refresh_token is missing")
    grant = state.tokens.grant_for_refresh(raw, client.client_id)
    scopes = grant.scopes
    requested = _requested(form)
    if requested:
        extra = [s for s in requested if s not in grant.scopes]
        if extra:
            raise InvalidScope(f"a refresh cannot widen the grant; not granted: {' '.join(extra)}")
        scopes = tuple(requested)
    rotate = state.behaviour.single_use_refresh
    return _issue(state, client, frozenset({grant.practice}), scopes, grant=grant, new_refresh=rotate)


def _context(scope: str) -> Context | None:
    try:
        parsed = parse_resource_scope(scope)
    except ValueError:
        return None
    return parsed.context if parsed else None


def _subset(requested: list[str], client: RegisteredClient) -> None:
    missing = [s for s in requested if s not in client.scopes]
    if missing:
        raise InvalidScope(
            f"scope not registered for client {client.client_id!r}: {' '.join(missing)} "
            f"(registered: {' '.join(client.scopes) or 'none'})"
        )


def _issue(
    state: SandboxState,
    client: RegisteredClient,
    practices: frozenset[str],
    scopes: tuple[str, ...],
    grant: Grant | None = None,
    *,
    new_refresh: bool = True,
) -> dict[str, Any]:
    # Backend-services tokens have their own lifetime: eCW issues them for 300 s only.
    lifetime = state.backend_token_lifetime_s() if grant is None else state.config.token_lifetime_s
    access = AccessToken(
        client_id=client.client_id,
        practices=practices,
        scopes=scopes,
        expires_at=time.time() + lifetime,
        grant_id=grant.id if grant else None,
        patient=grant.patient if grant else None,
    )
    body: dict[str, Any] = {
        "access_token": state.tokens.issue_access(access),
        "token_type": "bearer",
        "expires_in": lifetime,
        "scope": " ".join(scopes),
    }
    if grant is not None:
        # healow: public clients get no refresh token; confidential ones only when asked for.
        if new_refresh and client.confidential and REFRESH_SCOPES.intersection(grant.scopes):
            body["refresh_token"] = state.tokens.issue_refresh(grant)
        if grant.patient is not None:
            body["patient"] = grant.patient
    return body
