"""What to tell the operator when a token endpoint refuses (RFC 6749 §5.2; RFC 7523 §3.1).

An ``error`` code alone rarely names the cause: servers answer ``invalid_grant`` for an assertion
outside the clock window, an unknown ``kid``, a replayed ``jti`` or an expired registration alike.
So the hint follows what the server said: its ``error_description`` is matched against the causes
below (first match wins, most specific first). Without a description that names a cause, the hint
lists the usual causes for that error code instead of guessing one.

Matching reads the description only to choose advice; it never decides retries (STYLE 6) and the
description itself is quoted separately, trimmed and with JWT-shaped text cut (``oauth._description``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vitalbridge.tenancy.hints import edit_hint
from vitalbridge.tenancy.models import AuthMethod

if TYPE_CHECKING:
    from vitalbridge.smart.oauth import TokenContext

Advice = Callable[["TokenContext"], str]


def _jwks(ctx: TokenContext) -> str:
    return ctx.jwks_url or "(VB_PUBLIC_URL)/.well-known/jwks.json"


def _key(ctx: TokenContext) -> str:
    if ctx.auth_method is AuthMethod.client_secret_basic:
        return f"the EHR did not accept the client secret of {ctx.client_id!r}: re-enter the secret for this practice"
    return (
        f"the EHR could not verify the assertion's signature: check that the JWKS URL {_jwks(ctx)} is registered for "
        f"client {ctx.client_id!r}, is reachable from the EHR and lists kid {ctx.kid} (after a rotation the EHR may "
        "still cache the old key set)"
    )


def _replay(ctx: TokenContext) -> str:
    return (
        f"the EHR had already seen this assertion's jti: check that no other system or second hub signs as client "
        f"{ctx.client_id!r} with the same key, and that no proxy resends token requests"
    )


def _audience(ctx: TokenContext) -> str:
    return (
        f"the assertion's aud is the practice's token_url ({ctx.token_url}); it must be exactly the EHR's token "
        "endpoint: correct the practice's token_url"
    )


def _registration(ctx: TokenContext) -> str:
    return (
        f"the EHR does not accept client {ctx.client_id!r} (registration expired, disabled or not activated for this "
        "practice): check the app in the EHR's developer portal and with the practice"
    )


def _clock(_ctx: TokenContext) -> str:
    return "the assertion's iat/exp fall outside the EHR's time window: check the hub's clock (NTP)"


def _grant_gone(_ctx: TokenContext) -> str:
    return (
        "the user's grant was revoked or has expired: re-authorize (a user must authorize again at "
        "GET /api/v1/ecw/auth/authorize/)"
    )


def _code(_ctx: TokenContext) -> str:
    return "the authorization code or PKCE verifier was refused: start the authorization again"


def _redirect(_ctx: TokenContext) -> str:
    return (
        "the redirect URI must match the one registered with the EHR exactly: check VB_PUBLIC_URL and the registration"
    )


def _scope(ctx: TokenContext) -> str:
    return (
        f"the registration does not grant the requested scopes ({ctx.requested_scope or 'none'}); grant them in the "
        "EHR's developer portal or narrow the practice's scopes with " + edit_hint("--scopes '…'", '"scopes"')
    )


@dataclass(frozen=True)
class Cause:
    name: str
    # Words or phrases of an error_description that name this cause (matched whole, any case).
    phrases: tuple[str, ...]
    advice: Advice
    grant_types: tuple[str, ...] = ()  # only for these grants (empty: any)


_CLIENT_CREDENTIALS = ("client_credentials",)

# Order matters: client-assertion causes first (they can fail any grant of a confidential client),
# the key before the registration ("the registered JWKS URL answered 404" is about the key set),
# then what only one grant has, then the broad words ("expired", "time") last.
CAUSES: tuple[Cause, ...] = (
    Cause("replayed-jti", ("jti", "replay", "replayed", "reused", "duplicate"), _replay),
    Cause(
        "signature",
        ("kid", "key", "keys", "jwks", "jwk", "signature", "public key", "secret", "credentials"),
        _key,
    ),
    Cause(
        "registration",
        (
            "registration",
            "registered",
            "unregistered",
            "disabled",
            "inactive",
            "deactivated",
            "suspended",
            "not activated",
            "unknown client",
            "client not found",
        ),
        _registration,
    ),
    Cause("audience", ("aud", "audience"), _audience),
    Cause("clock", ("clock", "skew", "iat", "nbf", "exp", "not yet valid", "future"), _clock),
    Cause("redirect-uri", ("redirect_uri", "redirect uri", "redirect"), _redirect),
    Cause("pkce", ("code_verifier", "verifier", "pkce", "code_challenge"), _code),
    Cause(
        "grant-gone",
        ("refresh token", "refresh_token", "revoked", "expired", "consent", "invalid"),
        _grant_gone,
        ("refresh_token",),
    ),
    Cause("code", ("code", "expired", "used", "invalid"), _code, ("authorization_code",)),
    Cause("replayed-jti", ("already used",), _replay, _CLIENT_CREDENTIALS),
    Cause("clock", ("expired", "expiry", "time", "too old"), _clock, _CLIENT_CREDENTIALS),
    Cause("scope", ("scope", "scopes"), _scope),
)


def _mentions(description: str, phrase: str) -> bool:
    return re.search(rf"(?<![a-z0-9_]){re.escape(phrase)}(?![a-z0-9_])", description) is not None


def named_cause(description: str, grant_type: str) -> Cause | None:
    """The first cause the server's description names, for this grant type."""
    text = description.lower()
    for cause in CAUSES:
        if cause.grant_types and grant_type not in cause.grant_types:
            continue
        if any(_mentions(text, p) for p in cause.phrases):
            return cause
    return None


def _unexplained(error: str, ctx: TokenContext) -> str:
    """Advice from the error code alone: every usual cause, none singled out."""
    if error == "invalid_client":
        if ctx.auth_method is AuthMethod.client_secret_basic:
            return f"check the client id {ctx.client_id!r} and the client secret stored for this practice"
        return (
            f"check that the hub's JWKS URL {_jwks(ctx)} is registered for client {ctx.client_id!r}, is reachable "
            f"from the EHR, and lists kid {ctx.kid}; and that the registration is active"
        )
    if error == "invalid_grant":
        if ctx.grant_type == "refresh_token":
            return _grant_gone(ctx)
        if ctx.grant_type == "authorization_code":
            return _code(ctx)
        return (
            "the EHR did not say why; servers use invalid_grant for any of: the hub's clock (NTP) outside the "
            f"assertion's iat/exp window, a kid it has not fetched from {_jwks(ctx)}, a replayed jti, or an expired "
            f"or deactivated registration of client {ctx.client_id!r}"
        )
    if error == "invalid_scope":
        return _scope(ctx)
    if error in ("unauthorized_client", "unsupported_grant_type"):
        return f"the client registration does not allow the {ctx.grant_type} grant; check the app type"
    if error == "invalid_request":
        return "the EHR refused the request as malformed; its description says which parameter"
    return "see the EHR's description"


def hint(error: str, description: str, ctx: TokenContext) -> str:
    """What to check, following the server's ``error_description`` when it names a cause."""
    if error in ("unauthorized_client", "unsupported_grant_type"):
        # These name their cause exactly; a description only elaborates.
        return _unexplained(error, ctx)
    cause = named_cause(description, ctx.grant_type) if description else None
    if cause is not None:
        return cause.advice(ctx)
    return _unexplained(error, ctx)
