"""Client assertions (RFC 7523) and token-endpoint error messages, checked offline."""

from __future__ import annotations

import uuid

import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.runtime import Hub
from vitalbridge.smart import keys
from vitalbridge.smart.assertion import JWT_BEARER, client_assertion
from vitalbridge.smart.client_auth import ClientAuthenticator
from vitalbridge.smart.oauth import TokenContext, TokenResponse, auth_error
from vitalbridge.tenancy.models import AuthMethod, KeySetScope

TOKEN_URL = "https://oauth.example.org/oauth/oauth2/token"


def _conn(**overrides: object) -> PracticeConnection:
    values: dict[str, object] = {
        "id": "p1",
        "organization_id": "o1",
        "practice_code": "JAFJCD",
        "fhir_base_url": "https://fhir.example.org/fhir/r4/JAFJCD",
        "token_url": TOKEN_URL,
        "authorize_url": None,
        "client_id": "client-123",
        "auth_method": AuthMethod.private_key_jwt,
        "scopes": ("system/Patient.read",),
        "rate_limit_per_minute": 250,
        "request_timeout_s": 5.0,
        # These tests sign with the hub-wide set; organization sets have their own tests.
        "signing_key_set": KeySetScope.hub,
    }
    values.update(overrides)
    return PracticeConnection(**values)  # type: ignore[arg-type]


def test_assertion_header_and_claims(hub: Hub) -> None:
    with hub.sessions() as session, session.begin():
        kid = keys.generate_key(session, hub.sealer).kid
    auth = ClientAuthenticator(keys.KeyRing(hub.sessions, hub.sealer), hub.sealer).for_practice(_conn(), TOKEN_URL)
    assert auth.form["client_assertion_type"] == JWT_BEARER
    assert auth.basic is None
    assert auth.kid == kid
    with hub.sessions() as session:
        [public] = keys.published_jwks(session)["keys"]
    token = jwt.decode(auth.form["client_assertion"], RSAKey.import_key(public), algorithms=["RS384"])  # type: ignore[arg-type]
    assert token.header == {"alg": "RS384", "kid": kid, "typ": "JWT"}
    claims = token.claims
    assert claims["iss"] == claims["sub"] == "client-123"
    assert claims["aud"] == TOKEN_URL
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert uuid.UUID(claims["jti"]).version == 4
    # Only RS384 verifies it: the signature is not accepted under another algorithm.
    with pytest.raises(JoseError):
        jwt.decode(auth.form["client_assertion"], RSAKey.import_key(public), algorithms=["RS256"])  # type: ignore[arg-type]


def test_every_assertion_has_a_fresh_jti_and_lifetime_is_capped() -> None:
    key = keys.LoadedKey("kid-1", RSAKey.generate_key(2048))
    first = jwt.decode(client_assertion(key, client_id="c", token_url=TOKEN_URL), key.key, algorithms=["RS384"])
    second = jwt.decode(
        client_assertion(key, client_id="c", token_url=TOKEN_URL, lifetime_s=900), key.key, algorithms=["RS384"]
    )
    assert first.claims["jti"] != second.claims["jti"]
    assert second.claims["exp"] - second.claims["iat"] == 300


def test_client_secret_basic_needs_a_stored_secret(hub: Hub) -> None:
    authenticator = ClientAuthenticator(keys.KeyRing(hub.sessions, hub.sealer), hub.sealer)
    from vitalbridge.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="no client secret"):
        authenticator.for_practice(_conn(auth_method=AuthMethod.client_secret_basic), TOKEN_URL)


CTX = TokenContext(
    token_url=TOKEN_URL,
    grant_type="client_credentials",
    client_id="client-123",
    auth_method=AuthMethod.private_key_jwt,
    requested_scope="system/Patient.read system/Observation.write",
    kid="kid-abc",
    jwks_url="https://hub.example.org/.well-known/jwks.json",
)


@pytest.mark.parametrize(
    ("error", "ctx_changes", "expected"),
    [
        ("invalid_client", {}, ["https://hub.example.org/.well-known/jwks.json", "kid-abc", "client-123"]),
        ("invalid_client", {"auth_method": AuthMethod.client_secret_basic}, ["client secret"]),
        ("invalid_grant", {}, ["clock"]),
        ("invalid_grant", {"grant_type": "refresh_token"}, ["authorize again"]),
        ("invalid_grant", {"grant_type": "authorization_code"}, ["PKCE verifier"]),
        ("invalid_scope", {}, ["system/Patient.read system/Observation.write"]),
        ("unauthorized_client", {}, ["client_credentials"]),
    ],
)
def test_oauth_errors_become_actionable_messages(
    error: str, ctx_changes: dict[str, object], expected: list[str]
) -> None:
    from dataclasses import replace

    exc = auth_error(error, "", replace(CTX, **ctx_changes), 400)  # type: ignore[arg-type]
    assert exc.oauth_error == error
    assert not exc.transient
    for fragment in expected:
        assert fragment in str(exc)


def test_server_descriptions_are_trimmed_and_jwts_cut() -> None:
    leaked = "eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJjbGllbnQifQ.c2lnbmF0dXJlc2lnbmF0dXJl"
    from vitalbridge.smart.oauth import _description

    text = _description({"error": "invalid_client", "error_description": f"bad assertion {leaked} " + "x" * 1000})
    assert leaked not in text
    assert "[redacted]" in text
    assert len(text) <= 300


def test_token_response_parsing_defaults_and_refusals() -> None:
    from vitalbridge.errors import EhrAuthError

    parsed = TokenResponse.parse({"access_token": "abc", "token_type": "Bearer"}, "a b")
    assert (parsed.token_type, parsed.expires_in, parsed.scope, parsed.refresh_token) == ("bearer", 300, "a b", None)
    assert "abc" not in repr(parsed)
    with pytest.raises(EhrAuthError, match="only bearer"):
        TokenResponse.parse({"access_token": "abc", "token_type": "mac"}, "")
    with pytest.raises(EhrAuthError, match="without an access_token"):
        TokenResponse.parse({"token_type": "bearer"}, "")
