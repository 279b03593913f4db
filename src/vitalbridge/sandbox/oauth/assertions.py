"""``private_key_jwt`` client assertions (RFC 7523 §3, RFC 7521 §4.2, SMART Backend Services).

What eCW checks, in order, each failure an ``invalid_client`` (RFC 7523 §3.2):
the JWS header names ``alg`` RS384 (nothing else: not ``none``, not HS256, not RS256) and a
``kid``; ``iss`` names a registered client that uses keys; the ``kid`` is in the client's JWKS
(fetched once more if not); the signature verifies (joserfc, RS384 only); ``sub`` equals ``iss``;
``aud`` is the token endpoint URL; ``exp`` is in the future and at most 300 s after ``iat``; a
``jti`` is present and was never seen before (it is remembered until ``exp``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from vitalbridge.sandbox.errors import InvalidClient
from vitalbridge.sandbox.oauth.clients import ClientRegistry, RegisteredClient
from vitalbridge.sandbox.oauth.jwks import JwksCache
from vitalbridge.sandbox.oauth.tokens import TokenStore

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ACCEPTED_ALGORITHMS = ("RS384",)
# Clocks on the same network still drift; a few seconds of slack for iat in the future only.
IAT_LEEWAY_S = 5


def _unverified(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before any check, to find the client and key (never trusted as such)."""
    try:
        compact = jws.extract_compact(assertion.encode())
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeDecodeError) as exc:
        raise InvalidClient("client_assertion is not a compact JWS (header.payload.signature)") from exc
    if not isinstance(claims, dict):
        raise InvalidClient("client_assertion payload is not a JSON object of claims")
    return dict(compact.headers()), claims


def assertion_client_id(assertion: str) -> str | None:
    """The ``iss`` an assertion claims, for counting and rate limiting before verification."""
    try:
        _header, claims = _unverified(assertion)
    except InvalidClient:
        return None
    iss = claims.get("iss")
    return iss if isinstance(iss, str) else None


async def verify_assertion(
    assertion: str,
    *,
    token_url: str,
    clients: ClientRegistry,
    jwks: JwksCache,
    tokens: TokenStore,
    max_lifetime_s: int,
    now: Callable[[], float] = time.time,
) -> RegisteredClient:
    header, claims = _unverified(assertion)
    alg = header.get("alg")
    if alg not in ACCEPTED_ALGORITHMS:
        raise InvalidClient(f"client_assertion alg {alg!r} is not accepted; sign with RS384")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidClient("client_assertion header has no kid; set it to the id of the key in your JWKS")

    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise InvalidClient("client_assertion has no iss claim; set iss and sub to your client id")
    client = clients.get(iss)
    if client is None:
        raise InvalidClient(f"unknown client {iss!r}: iss must be the client id registered with the EHR")
    if not client.uses_keys:
        raise InvalidClient(f"client {iss!r} has no registered JWKS; it cannot authenticate with private_key_jwt")

    key_set = await jwks.keys_for(client)
    key = _find_key(key_set, kid)
    if key is None and client.jwks_url:
        key = _find_key(await jwks.keys_for(client, refresh=True), kid)
    if key is None:
        where = client.jwks_url or "the registered inline JWKS"
        raise InvalidClient(f"no key with kid {kid!r} in {where}; the kid header must match a published key")

    try:
        jwt.decode(assertion, key, algorithms=list(ACCEPTED_ALGORITHMS))
    except JoseError as exc:
        raise InvalidClient(
            f"client_assertion signature does not verify with key {kid!r} ({exc.error}); "
            "sign with the private key matching that kid"
        ) from exc

    if claims.get("sub") != iss:
        raise InvalidClient("client_assertion sub must equal iss (both the client id)")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if token_url not in audiences:
        raise InvalidClient(f"client_assertion aud must be the token endpoint URL {token_url}")

    current = now()
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise InvalidClient("client_assertion has no numeric exp claim")
    if exp <= current:
        raise InvalidClient("client_assertion expired (exp is in the past); check the clock and sign a fresh one")
    iat = claims.get("iat")
    if iat is not None:
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise InvalidClient("client_assertion iat must be a number (seconds since the epoch)")
        if iat > current + IAT_LEEWAY_S:
            raise InvalidClient("client_assertion iat is in the future; check the clock")
        if exp - iat > max_lifetime_s:
            raise InvalidClient(
                f"client_assertion lifetime exp - iat is {int(exp - iat)} s; at most {max_lifetime_s} s"
            )
    if exp - current > max_lifetime_s:
        raise InvalidClient(f"client_assertion exp is more than {max_lifetime_s} s away")

    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidClient("client_assertion has no jti; use a fresh UUID for every assertion")
    if not tokens.remember_jti(iss, jti, float(exp)):
        raise InvalidClient("client_assertion jti was already used; every assertion needs a fresh jti")
    return client


def _find_key(key_set: KeySet, kid: str) -> Any:
    for key in key_set.keys:
        if key.kid == kid:
            return key
    return None
