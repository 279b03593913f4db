"""The OAuth 2.0 token endpoint, as a client (RFC 6749 §3.2, §5; RFC 7523 §2.2; RFC 7636 §4.5).

``post_token`` sends one form-encoded token request with the practice's client authentication
and turns the answer into a ``TokenResponse`` or an error from the tree with a message that
says what to fix. Nothing secret (assertion, client secret, tokens) ever reaches a message,
a log line or a ``repr``.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote_plus

import httpx

from vitalbridge.ehr import call_meter
from vitalbridge.ehr.headers import rate_limit_wait
from vitalbridge.errors import EhrAuthError, EhrAuthUnavailable, EhrRateLimited
from vitalbridge.smart.oauth_hints import hint
from vitalbridge.tenancy.hints import edit_hint
from vitalbridge.tenancy.models import AuthMethod

log = logging.getLogger(__name__)

# SPEC §3: eCW access tokens last 3600 s, but a server that omits expires_in gets the benefit
# of no doubt: assume five minutes and renew early rather than send an expired token.
DEFAULT_EXPIRES_IN_S = 300
_DESCRIPTION_MAX = 300
# Anything shaped like a JWS/JWT is cut from server text before it reaches a message.
_JWT_LIKE = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


@dataclass(frozen=True)
class TokenResponse:
    """A successful token response (RFC 6749 §5.1). Token values are hidden from ``repr``."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int
    scope: str
    refresh_token: str | None = field(default=None, repr=False)
    # The signing key's kid when private_key_jwt was used (for the status page and audit).
    kid: str | None = None

    @classmethod
    def parse(cls, body: Any, requested_scope: str) -> TokenResponse:
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise EhrAuthError("the token endpoint answered 200 without an access_token")
        token_type = str(body.get("token_type") or "")
        if token_type.lower() != "bearer":
            raise EhrAuthError(f"the token endpoint issued a {token_type or 'typeless'} token; only bearer is usable")
        raw_expires = body.get("expires_in", DEFAULT_EXPIRES_IN_S)
        try:
            expires_in = int(raw_expires)
        except (TypeError, ValueError):
            expires_in = DEFAULT_EXPIRES_IN_S
        refresh = body.get("refresh_token")
        return cls(
            access_token=body["access_token"],
            token_type="bearer",
            expires_in=max(expires_in, 1),
            # RFC 6749 §5.1: scope is omitted when identical to the requested one.
            scope=str(body.get("scope") or requested_scope),
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        )


@dataclass(frozen=True)
class ClientAuth:
    """Client authentication for one token request: assertion form fields or HTTP Basic."""

    method: AuthMethod
    client_id: str
    form: dict[str, str] = field(default_factory=dict, repr=False)
    basic: tuple[str, str] | None = field(default=None, repr=False)
    kid: str | None = None

    def httpx_auth(self) -> httpx.BasicAuth | None:
        if self.basic is None:
            return None
        # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
        return httpx.BasicAuth(quote_plus(self.basic[0]), quote_plus(self.basic[1]))


@dataclass(frozen=True)
class TokenContext:
    """What an error message may name to help the operator (no secrets)."""

    token_url: str
    grant_type: str
    client_id: str
    auth_method: AuthMethod
    requested_scope: str
    kid: str | None = None
    jwks_url: str | None = None


def _description(body: Any) -> str:
    text = str(body.get("error_description") or "") if isinstance(body, dict) else ""
    text = _JWT_LIKE.sub("[redacted]", text).strip()
    return text[:_DESCRIPTION_MAX]


def auth_error(error: str, description: str, ctx: TokenContext, status: int | None) -> EhrAuthError:
    message = f"{ctx.grant_type} token request refused ({error}): {hint(error, description, ctx)}"
    if description:
        message += f". The EHR said: {description}"
    return EhrAuthError(message, status_code=status, oauth_error=error)


def post_token(
    http: httpx.Client, form: dict[str, str], auth: ClientAuth, ctx: TokenContext, *, timeout: float = 30.0
) -> TokenResponse:
    """One token request. Raises ``EhrAuthError`` (refused), ``EhrAuthUnavailable`` (network or
    5xx) or ``EhrRateLimited`` (429)."""
    started = time.perf_counter()
    # Counted whether or not it is answered: eCW counts every /token call in the 250/min.
    call_meter.count("token")
    try:
        resp = http.post(
            ctx.token_url,
            data={**form, **auth.form},
            auth=auth.httpx_auth() or httpx.USE_CLIENT_DEFAULT,
            headers={"Accept": "application/json"},
            timeout=timeout,
        )
    except httpx.TimeoutException:
        raise EhrAuthUnavailable(
            f"the token endpoint {ctx.token_url} did not answer in time; check the EHR's status and the network"
        ) from None
    except httpx.TransportError as exc:
        raise EhrAuthUnavailable(
            f"the token endpoint {ctx.token_url} is unreachable ({type(exc).__name__}); check DNS, firewall and "
            "TLS, and the practice's token URL (change it with " + edit_hint("--token-url URL", '"token_url"') + ")"
        ) from None
    log.debug(
        "token request grant=%s client=%s status=%s ms=%.0f",
        ctx.grant_type,
        ctx.client_id,
        resp.status_code,
        (time.perf_counter() - started) * 1000,
    )
    try:
        body: Any = resp.json()
    except ValueError:
        body = None
    if resp.status_code == 429:
        # eCW counts /token in the practice's 250/min and may send no Retry-After (minute window).
        wait, minute_window = rate_limit_wait(resp.headers.get("retry-after"))
        raise EhrRateLimited(
            f"the token endpoint {ctx.token_url} is rate limiting this client",
            retry_after=wait,
            minute_window=minute_window,
        )
    if resp.status_code >= 500:
        raise EhrAuthUnavailable(
            f"the token endpoint {ctx.token_url} failed with HTTP {resp.status_code}; try again later",
            status_code=resp.status_code,
        )
    if resp.status_code != 200:
        error = str(body.get("error") or "") if isinstance(body, dict) else ""
        if not error:
            return _raise_unexpected(resp.status_code, ctx)
        raise auth_error(error, _description(body), ctx, resp.status_code)
    return replace(TokenResponse.parse(body, ctx.requested_scope), kid=auth.kid)


def post_revocation(
    http: httpx.Client, form: dict[str, str], auth: ClientAuth, ctx: TokenContext, *, timeout: float = 30.0
) -> None:
    """RFC 7009 §2.1: revoke a token. 200 means done (also for tokens the server never knew)."""
    try:
        resp = http.post(
            ctx.token_url,
            data={**form, **auth.form},
            auth=auth.httpx_auth() or httpx.USE_CLIENT_DEFAULT,
            headers={"Accept": "application/json"},
            timeout=timeout,
        )
    except httpx.TransportError as exc:
        raise EhrAuthUnavailable(
            f"the revocation endpoint {ctx.token_url} is unreachable ({type(exc).__name__})"
        ) from None
    if resp.status_code == 200:
        return
    if resp.status_code >= 500:
        raise EhrAuthUnavailable(
            f"the revocation endpoint {ctx.token_url} failed with HTTP {resp.status_code}", status_code=resp.status_code
        )
    try:
        body: Any = resp.json()
    except ValueError:
        body = None
    error = str(body.get("error") or "") if isinstance(body, dict) else ""
    raise auth_error(error or "invalid_request", _description(body), ctx, resp.status_code)


def _raise_unexpected(status: int, ctx: TokenContext) -> TokenResponse:
    raise EhrAuthError(
        f"the token endpoint {ctx.token_url} answered HTTP {status} without an OAuth error; "
        "check that the practice's token URL is the EHR's OAuth token endpoint (change it with "
        + edit_hint("--token-url URL", '"token_url"')
        + ")",
        status_code=status,
    )
