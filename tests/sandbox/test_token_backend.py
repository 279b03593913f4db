"""SMART Backend Services at the token endpoint: private_key_jwt assertions verified against the
client's JWKS URL, and every refusal eCW makes (SPEC §3, §11)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.sandbox.conftest import JwksHost
from tests.sandbox.support import (
    JWT_BEARER,
    Sandbox,
    claims_for,
    hand_built,
    new_key,
    public_jwks,
    signed_assertion,
)

CLIENT = "backend-client"


@pytest.fixture
def key(sandbox: Sandbox, jwks_server: JwksHost) -> RSAKey:
    key = new_key("k-2026")
    jwks_server.document = public_jwks(key)
    sandbox.keys[CLIENT] = key
    sandbox.register(CLIENT, jwks_url=jwks_server.url)
    return key


def test_valid_assertion_gets_a_token_and_the_jwks_is_cached(
    sandbox: Sandbox, key: RSAKey, jwks_server: JwksHost
) -> None:
    resp = sandbox.request_token(sandbox.assertion_form(signed_assertion(key, CLIENT, sandbox.token_url)))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == sandbox.config.token_lifetime_s
    assert body["scope"].split() == ["system/Patient.read", "system/Observation.read", "system/Observation.write"]
    assert body["access_token"]
    assert resp.headers["cache-control"] == "no-store"

    sandbox.backend_token(CLIENT, scope="system/Patient.read")
    assert jwks_server.fetches == 1


def test_key_published_after_caching_is_found_by_refetching(
    sandbox: Sandbox, key: RSAKey, jwks_server: JwksHost
) -> None:
    sandbox.backend_token(CLIENT)
    rotated = new_key("k-2027")
    jwks_server.document = public_jwks(key, rotated)
    resp = sandbox.request_token(sandbox.assertion_form(signed_assertion(rotated, CLIENT, sandbox.token_url)))
    assert resp.status_code == 200, resp.text
    assert jwks_server.fetches == 2


def test_inline_jwks_registration_works(sandbox: Sandbox) -> None:
    sandbox.register_keyed("inline-client")
    assert sandbox.backend_token("inline-client")


AssertionFactory = Callable[[RSAKey, str], str]


def _rs256_with_same_modulus(key: RSAKey, aud: str) -> str:
    # Same RSA key material, but registered as RS384 only: RS256 must still be refused.
    unrestricted = RSAKey.import_key(key.as_dict(private=True) | {"alg": "RS256"})  # type: ignore[arg-type]
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims_for(CLIENT, aud), unrestricted, algorithms=["RS256"])


def _hs256_signed_with_public_key(key: RSAKey, aud: str) -> str:
    # The classic algorithm-confusion attack: HMAC keyed with the public key's PEM.
    pem = key.as_pem(private=False)
    return hand_built({"alg": "HS256", "kid": key.kid, "typ": "JWT"}, claims_for(CLIENT, aud), hmac_secret=pem)


REFUSALS: dict[str, tuple[AssertionFactory, str]] = {
    "wrong kid": (lambda k, aud: signed_assertion(k, CLIENT, aud, kid="not-published"), "kid"),
    "missing kid": (lambda k, aud: signed_assertion(k, CLIENT, aud, kid=None), "kid"),
    "alg none": (lambda k, aud: hand_built({"alg": "none", "kid": k.kid}, claims_for(CLIENT, aud)), "RS384"),
    "alg HS256": (_hs256_signed_with_public_key, "RS384"),
    "alg RS256": (_rs256_with_same_modulus, "RS384"),
    "signed by another key": (lambda k, aud: signed_assertion(new_key(k.kid), CLIENT, aud), "signature"),
    "wrong aud": (lambda k, aud: signed_assertion(k, CLIENT, "https://oauthserver.example/token"), "aud"),
    "aud is not the token URL": (lambda k, aud: signed_assertion(k, CLIENT, aud.replace("token", "authorize")), "aud"),
    "lifetime over 300 s": (lambda k, aud: signed_assertion(k, CLIENT, aud, exp=_now() + 400, iat=_now()), "300"),
    "exp far ahead without iat": (lambda k, aud: signed_assertion(k, CLIENT, aud, exp=_now() + 3600, iat=None), "300"),
    "expired": (lambda k, aud: signed_assertion(k, CLIENT, aud, iat=_now() - 400, exp=_now() - 100), "expired"),
    "missing exp": (lambda k, aud: signed_assertion(k, CLIENT, aud, exp=None), "exp"),
    "iat in the future": (lambda k, aud: signed_assertion(k, CLIENT, aud, iat=_now() + 120, exp=_now() + 200), "iat"),
    "missing jti": (lambda k, aud: signed_assertion(k, CLIENT, aud, jti=None), "jti"),
    "iss differs from sub": (lambda k, aud: signed_assertion(k, CLIENT, aud, sub="someone-else"), "sub"),
    "unknown client": (lambda k, aud: signed_assertion(k, "nobody", aud), "unknown client"),
    "not a JWT": (lambda k, aud: "not.a.jwt", "compact JWS"),
}


def _now() -> int:
    import time

    return int(time.time())


@pytest.mark.parametrize("case", list(REFUSALS))
def test_assertion_refusals(sandbox: Sandbox, key: RSAKey, case: str) -> None:
    build, hint = REFUSALS[case]
    resp = sandbox.request_token(sandbox.assertion_form(build(key, sandbox.token_url)))
    assert resp.status_code == 401, resp.text
    body = resp.json()
    assert body["error"] == "invalid_client"
    assert hint in body["error_description"]
    assert resp.headers["cache-control"] == "no-store"
    assert sandbox.stats()["tokens_issued"] == 0


def test_reused_jti_is_refused(sandbox: Sandbox, key: RSAKey) -> None:
    assertion = signed_assertion(key, CLIENT, sandbox.token_url)
    assert sandbox.request_token(sandbox.assertion_form(assertion)).status_code == 200
    again = sandbox.request_token(sandbox.assertion_form(assertion))
    assert again.status_code == 401
    assert "jti" in again.json()["error_description"]


def test_wrong_assertion_type_is_refused(sandbox: Sandbox, key: RSAKey) -> None:
    form = sandbox.assertion_form(signed_assertion(key, CLIENT, sandbox.token_url))
    form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
    resp = sandbox.request_token(form)
    assert resp.status_code == 401
    assert JWT_BEARER in resp.json()["error_description"]


def test_unreachable_jwks_url_is_invalid_client(sandbox: Sandbox, jwks_server: JwksHost) -> None:
    key = new_key()
    sandbox.register("flaky-jwks", jwks_url=jwks_server.url)
    jwks_server.status = 500
    resp = sandbox.request_token(sandbox.assertion_form(signed_assertion(key, "flaky-jwks", sandbox.token_url)))
    assert resp.status_code == 401
    assert "500" in resp.json()["error_description"]


@pytest.mark.parametrize(
    ("scope", "missing"),
    [
        ("system/Patient.read system/Condition.read", "system/Condition.read"),
        ("system/Observation.*", "system/Observation.*"),
    ],
)
def test_unregistered_scope_is_invalid_scope_naming_it(sandbox: Sandbox, key: RSAKey, scope: str, missing: str) -> None:
    resp = sandbox.request_token(sandbox.assertion_form(signed_assertion(key, CLIENT, sandbox.token_url), scope))
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "invalid_scope"
    assert missing in body["error_description"]
    assert "system/Patient.read " not in body["error_description"].split("registered")[0]


def test_user_scopes_are_not_granted_by_client_credentials(sandbox: Sandbox) -> None:
    sandbox.register_keyed("mixed", scopes=["system/Patient.read", "user/Patient.read"])
    key = sandbox.keys["mixed"]
    form = sandbox.assertion_form(signed_assertion(key, "mixed", sandbox.token_url), "user/Patient.read")
    resp = sandbox.request_token(form)
    assert resp.json()["error"] == "invalid_scope"
    # An empty scope means every registered system/ scope, and nothing else.
    token = sandbox.request_token(sandbox.assertion_form(signed_assertion(key, "mixed", sandbox.token_url)))
    assert token.json()["scope"] == "system/Patient.read"


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({}, 400, "invalid_request"),
        ({"grant_type": "password", "username": "u", "password": "p"}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
    ],
)
def test_malformed_token_requests(sandbox: Sandbox, form: dict[str, Any], status: int, error: str) -> None:
    resp = sandbox.request_token(form)
    assert resp.status_code == status
    assert resp.json()["error"] == error


def test_token_request_must_be_form_encoded_without_repeats(sandbox: Sandbox, key: RSAKey) -> None:
    as_json = sandbox.http.post("/oauth/oauth2/token", json={"grant_type": "client_credentials"})
    assert as_json.json()["error"] == "invalid_request"
    repeated = sandbox.http.post(
        "/oauth/oauth2/token",
        content="grant_type=client_credentials&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "more than once" in repeated.json()["error_description"]


def test_aud_parameter_binds_the_token_to_one_practice(sandbox: Sandbox) -> None:
    sandbox.register_keyed("two-practices", practices=["JAFJCD", "PRAC2"])
    form = sandbox.assertion_form(signed_assertion(sandbox.keys["two-practices"], "two-practices", sandbox.token_url))
    form["aud"] = sandbox.base("PRAC2")
    token = sandbox.request_token(form).json()["access_token"]
    assert sandbox.get("Patient", token, "PRAC2").status_code == 200
    assert sandbox.get("Patient", token, "JAFJCD").status_code == 403
    assert sandbox.stats()["token_requests_by_practice"] == {"PRAC2": 1}
