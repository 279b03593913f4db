"""Token-endpoint refusals get a hint that follows what the server said (RFC 6749 §5.2 ``error`` and
``error_description``), never one guessed cause per error code.

The descriptions below are written for these tests. They follow the wording classes of RFC 7523
§3 (which claim of a JWT bearer assertion failed), RFC 6749 §5.2 (what ``invalid_grant`` covers:
an expired, revoked or replayed grant, a redirect URI mismatch) and the kinds of text other teams'
SMART servers sent in the field trials (issue 12, item 5); none is copied from a server.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.smart.conftest import SmartEnv
from vitalbridge.servers import ServerThread
from vitalbridge.smart.oauth import TokenContext, auth_error
from vitalbridge.smart.oauth_hints import named_cause
from vitalbridge.tenancy.models import AuthMethod

CTX = TokenContext(
    token_url="https://ehr.example.org/oauth/token",
    grant_type="client_credentials",
    client_id="client-123",
    auth_method=AuthMethod.private_key_jwt,
    requested_scope="system/Patient.read system/Observation.write",
    kid="kid-abc",
    jwks_url="https://hub.example.org/.well-known/jwks.json",
)

CLOCK = "check the hub's clock (NTP)"


@pytest.mark.parametrize(
    ("error", "description", "grant_type", "cause", "expected", "not_expected"),
    [
        # invalid_grant for four different causes: the hint follows the description each time.
        ("invalid_grant", "Unknown key id kid-abc", "client_credentials", "signature", "lists kid kid-abc", CLOCK),
        ("invalid_grant", "JWT jti has already been used", "client_credentials", "replayed-jti", "jti", CLOCK),
        ("invalid_grant", "Assertion replay detected", "client_credentials", "replayed-jti", "already seen", CLOCK),
        (
            "invalid_grant",
            "Client registration has expired",
            "client_credentials",
            "registration",
            "developer portal",
            CLOCK,
        ),
        ("invalid_grant", "iat is in the future", "client_credentials", "clock", CLOCK, "jti"),
        ("invalid_grant", "The assertion has expired", "client_credentials", "clock", CLOCK, "developer portal"),
        ("invalid_grant", "aud claim does not match", "client_credentials", "audience", "token_url", CLOCK),
        # Other error codes follow their description too.
        ("invalid_client", "Client is disabled", "client_credentials", "registration", "not activated", "kid-abc"),
        ("invalid_client", "exp claim too far in the future", "client_credentials", "clock", CLOCK, "kid-abc"),
        (
            "invalid_client",
            "Signature verification failed",
            "client_credentials",
            "signature",
            "https://hub.example.org/.well-known/jwks.json",
            CLOCK,
        ),
        # Both a key and a registration word: the key set is what to check.
        (
            "invalid_client",
            "the registered JWKS URL answered HTTP 404",
            "client_credentials",
            "signature",
            "lists kid kid-abc",
            "developer portal",
        ),
        ("invalid_client", "unknown client 'x'", "client_credentials", "registration", "developer portal", CLOCK),
        # The same words mean something else for a user grant.
        ("invalid_grant", "Refresh token expired", "refresh_token", "grant-gone", "re-authorize", CLOCK),
        ("invalid_grant", "token was revoked by the user", "refresh_token", "grant-gone", "re-authorize", CLOCK),
        ("invalid_grant", "code_verifier does not match", "authorization_code", "pkce", "PKCE verifier", CLOCK),
        ("invalid_grant", "redirect_uri mismatch", "authorization_code", "redirect-uri", "redirect URI", CLOCK),
        ("invalid_grant", "authorization code already used", "authorization_code", "code", "start the", CLOCK),
    ],
)
def test_the_hint_follows_the_servers_description(
    error: str, description: str, grant_type: str, cause: str, expected: str, not_expected: str
) -> None:
    found = named_cause(description, grant_type)
    assert found is not None
    assert found.name == cause
    exc = auth_error(error, description, replace(CTX, grant_type=grant_type), 400)
    assert expected in str(exc)
    assert not_expected not in str(exc)
    # The server's own words are quoted after the hint.
    assert str(exc).endswith(f"The EHR said: {description}")
    assert exc.oauth_error == error


@pytest.mark.parametrize("description", ["", "Invalid grant", "assertion rejected", "Bad Request"])
def test_invalid_grant_without_a_named_cause_lists_every_usual_cause(description: str) -> None:
    assert named_cause(description, "client_credentials") is None
    message = str(auth_error("invalid_grant", description, CTX, 400))
    assert "did not say why" in message
    for cause in ("clock (NTP)", "kid", "replayed jti", "registration"):
        assert cause in message


def test_unknown_words_do_not_match_inside_other_words() -> None:
    # "expiration"/"keyboard"/"timestamp-free" must not pass for "exp"/"key"/"time".
    assert named_cause("keyboard expiration timestamp", "client_credentials") is None


def test_unauthorized_client_keeps_its_exact_meaning() -> None:
    message = str(auth_error("unauthorized_client", "client may not use this key", CTX, 400))
    assert "does not allow the client_credentials grant" in message


def refusing_token_endpoint(error: str, description: str | None) -> Starlette:
    async def token(_request: Request) -> JSONResponse:
        body: dict[str, Any] = {"error": error}
        if description is not None:
            body["error_description"] = description
        return JSONResponse(body, status_code=400)

    return Starlette(routes=[Route("/token", token, methods=["POST"])])


@pytest.mark.parametrize(
    ("description", "expected", "not_expected"),
    [
        ("kid not found in client JWKS", "lists kid", CLOCK),
        ("jti replay", "already seen this assertion's jti", CLOCK),
        ("clock skew too large", CLOCK, "jti"),
        (None, "did not say why", "The EHR said"),
    ],
)
def test_a_real_token_endpoint_refusal_reaches_the_api_with_its_hint(
    smart_env: SmartEnv, description: str | None, expected: str, not_expected: str
) -> None:
    with ServerThread(refusing_token_endpoint("invalid_grant", description)) as url:
        smart_env.add_practice("PRAC2", token_url=f"{url}/token")
        resp = smart_env.api.post("/api/v1/ecw/test/jwt/", json={"practice": "PRAC2"}, headers=smart_env.tenant.headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "error"
    assert body["oauth_error"] == "invalid_grant"
    assert expected in body["detail"]
    assert not_expected not in body["detail"]
