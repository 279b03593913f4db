"""Client authentication at the token and revocation endpoints (RFC 6749 §2.3, RFC 7523 §2.2).

Exactly one method per request (RFC 6749 §2.3 forbids mixing): ``client_secret_basic`` in
the Authorization header, a ``private_key_jwt`` assertion in the body, or — for public clients
only — a bare ``client_id`` in the body. ``client_secret_post`` is refused with a hint, as eCW
registers Basic only.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from urllib.parse import unquote_plus

from starlette.requests import Request

from vitalbridge.sandbox.errors import InvalidClient, InvalidRequest
from vitalbridge.sandbox.oauth.assertions import JWT_BEARER, assertion_client_id, verify_assertion
from vitalbridge.sandbox.oauth.clients import RegisteredClient
from vitalbridge.sandbox.state import SandboxState

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="vitalbridge-sandbox", charset="UTF-8"'}


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidClient("the Basic credentials are not valid base64", headers=BASIC_CHALLENGE) from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("the Basic credentials must be client_id:client_secret", headers=BASIC_CHALLENGE)
    # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    return unquote_plus(client_id), unquote_plus(secret)


def presented_client_id(request: Request, form: Mapping[str, str]) -> str | None:
    """Who the request says it is, before any verification (for stats and rate limiting)."""
    try:
        basic = _basic_credentials(request)
    except InvalidClient:
        basic = None
    if basic is not None:
        return basic[0]
    if form.get("client_assertion"):
        return assertion_client_id(form["client_assertion"])
    return form.get("client_id") or None


async def authenticate_client(
    request: Request, form: Mapping[str, str], state: SandboxState, token_url: str
) -> RegisteredClient:
    basic = _basic_credentials(request)
    has_assertion = "client_assertion" in form or "client_assertion_type" in form
    if basic is not None and has_assertion:
        raise InvalidRequest("use one client authentication method: HTTP Basic or client_assertion, not both")
    if "client_secret" in form:
        raise InvalidClient("client_secret_post is not supported; send the secret with HTTP Basic")

    if basic is not None:
        client_id, secret = basic
        client = state.clients.get(client_id)
        if client is None:
            raise InvalidClient(f"unknown client {client_id!r}", headers=BASIC_CHALLENGE)
        if client.client_secret is None:
            raise InvalidClient(
                f"client {client_id!r} has no registered secret; authenticate with private_key_jwt",
                headers=BASIC_CHALLENGE,
            )
        if not client.secret_matches(secret):
            raise InvalidClient("client authentication failed: check the client secret", headers=BASIC_CHALLENGE)
        _same_client(form, client)
        return client

    if has_assertion:
        if form.get("client_assertion_type") != JWT_BEARER:
            raise InvalidClient(f"client_assertion_type must be {JWT_BEARER}")
        assertion = form.get("client_assertion")
        if not assertion:
            raise InvalidClient("client_assertion is missing")
        client = await verify_assertion(
            assertion,
            token_url=token_url,
            clients=state.clients,
            jwks=state.jwks,
            tokens=state.tokens,
            max_lifetime_s=state.config.assertion_max_lifetime_s,
        )
        _same_client(form, client)
        return client

    public_id = form.get("client_id")
    if not public_id:
        raise InvalidClient(
            "no client authentication: use HTTP Basic or a private_key_jwt client_assertion", headers=BASIC_CHALLENGE
        )
    client = state.clients.get(public_id)
    if client is None:
        raise InvalidClient(f"unknown client {public_id!r}")
    if client.confidential:
        raise InvalidClient(f"client {public_id!r} is confidential and must authenticate (Basic or client_assertion)")
    return client


def _same_client(form: Mapping[str, str], client: RegisteredClient) -> None:
    claimed = form.get("client_id")
    if claimed and claimed != client.client_id:
        raise InvalidClient("client_id in the body does not match the authenticated client")
