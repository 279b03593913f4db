"""Standalone launch: authorize with PKCE S256, consent, code exchange, refresh-token rotation
and revocation (SMART App Launch 2.0; RFC 6749 §4.1, §6; RFC 7636; RFC 7009; SPEC §3)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc.jwk import RSAKey

from tests.sandbox.conftest import SandboxFactory
from tests.sandbox.support import JWT_BEARER, PRACTICE, Sandbox, pkce_pair, signed_assertion

CLIENT = "launch-app"
REDIRECT = "https://hub.example/api/v1/ecw/auth/callback/"
USER_SCOPES = [
    "user/Patient.read",
    "user/Observation.write",
    "offline_access",
    "launch/patient",
    "patient/Patient.read",
]


@pytest.fixture
def key(sandbox: Sandbox) -> RSAKey:
    return sandbox.register_keyed(CLIENT, scopes=USER_SCOPES, redirect_uris=[REDIRECT])


def _authorize_params(sandbox: Sandbox, challenge: str, **overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": CLIENT,
        "redirect_uri": REDIRECT,
        "scope": "user/Patient.read user/Observation.write offline_access",
        "state": "csrf-123",
        "aud": sandbox.base(),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "sandbox_auto_approve": "1",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v != ""}


def _redirect_query(resp: Any) -> dict[str, str]:
    assert resp.status_code == 302, resp.text
    location = resp.headers["location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _code(sandbox: Sandbox, challenge: str, **overrides: str) -> str:
    query = _redirect_query(
        sandbox.http.get("/oauth/oauth2/authorize", params=_authorize_params(sandbox, challenge, **overrides))
    )
    assert query["state"] == "csrf-123"
    return query["code"]


def _exchange(sandbox: Sandbox, key: RSAKey, code: str, verifier: str, redirect: str = REDIRECT) -> Any:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect,
        "code_verifier": verifier,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": signed_assertion(key, CLIENT, sandbox.token_url),
    }
    return sandbox.request_token(form)


def _refresh(sandbox: Sandbox, key: RSAKey, refresh_token: str) -> Any:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": signed_assertion(key, CLIENT, sandbox.token_url),
    }
    return sandbox.request_token(form)


def _revoke(sandbox: Sandbox, key: RSAKey, token: str) -> Any:
    form = {
        "token": token,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": signed_assertion(key, CLIENT, sandbox.token_url),
    }
    return sandbox.http.post("/oauth/oauth2/revoke", data=form)


def test_smart_configuration(sandbox: Sandbox) -> None:
    config = sandbox.http.get(f"/fhir/r4/{PRACTICE}/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == sandbox.token_url
    assert config["authorization_endpoint"] == f"{sandbox.url}/oauth/oauth2/authorize"
    assert config["revocation_endpoint"] == f"{sandbox.url}/oauth/oauth2/revoke"
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt", "client_secret_basic"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384"]
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert {"authorization_code", "client_credentials", "refresh_token"} <= set(config["grant_types_supported"])
    assert {"launch-standalone", "client-confidential-asymmetric", "permission-v2"} <= set(config["capabilities"])
    assert "system/Observation.write" in config["scopes_supported"]


def test_full_launch_with_private_key_jwt(sandbox: Sandbox, key: RSAKey) -> None:
    verifier, challenge = pkce_pair()
    resp = _exchange(sandbox, key, _code(sandbox, challenge), verifier)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["scope"] == "user/Patient.read user/Observation.write offline_access"
    assert body["refresh_token"]
    assert body["expires_in"] == sandbox.config.token_lifetime_s
    assert sandbox.get("Patient", body["access_token"], params={"_count": 1}).status_code == 200
    assert sandbox.get("Patient", body["access_token"], "PRAC2").status_code == 403


def test_consent_page_approve_and_deny(sandbox: Sandbox, key: RSAKey) -> None:
    _verifier, challenge = pkce_pair()
    params = _authorize_params(sandbox, challenge, sandbox_auto_approve="")
    for decision in ("approve", "deny"):
        page = sandbox.http.get("/oauth/oauth2/authorize", params=params)
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert CLIENT in page.text
        match = re.search(r'name="request_id" value="([^"]+)"', page.text)
        assert match is not None
        answer = sandbox.http.post("/oauth/oauth2/authorize", data={"request_id": match[1], "decision": decision})
        query = _redirect_query(answer)
        assert query["state"] == "csrf-123"
        if decision == "approve":
            assert query["code"]
        else:
            assert query["error"] == "access_denied"
        replay = sandbox.http.post("/oauth/oauth2/authorize", data={"request_id": match[1], "decision": decision})
        assert replay.status_code == 400


def test_wrong_pkce_verifier_is_invalid_grant(sandbox: Sandbox, key: RSAKey) -> None:
    _verifier, challenge = pkce_pair()
    other_verifier, _ = pkce_pair()
    resp = _exchange(sandbox, key, _code(sandbox, challenge), other_verifier)
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"
    assert "code_verifier" in resp.json()["error_description"]


def test_redirect_uri_mismatch_is_shown_not_redirected(sandbox: Sandbox, key: RSAKey) -> None:
    _verifier, challenge = pkce_pair()
    for uri in (REDIRECT + "x", REDIRECT.rstrip("/"), "https://evil.example/cb"):
        resp = sandbox.http.get(
            "/oauth/oauth2/authorize", params=_authorize_params(sandbox, challenge, redirect_uri=uri)
        )
        assert resp.status_code == 400
        assert "location" not in resp.headers
        assert "redirect_uri" in resp.json()["error_description"]


def test_redirect_uri_must_match_at_exchange(sandbox: Sandbox, key: RSAKey) -> None:
    verifier, challenge = pkce_pair()
    resp = _exchange(sandbox, key, _code(sandbox, challenge), verifier, redirect="https://hub.example/other")
    assert resp.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": ""}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"aud": "https://elsewhere.example/fhir"}, "invalid_request"),
        ({"aud": "{base}/fhir/r4/PRAC2"}, "unauthorized_client"),
        ({"scope": "system/Patient.read"}, "invalid_scope"),
        ({"scope": "user/Condition.read"}, "invalid_scope"),
    ],
)
def test_authorization_request_refusals_go_back_to_the_client(
    sandbox: Sandbox, key: RSAKey, overrides: dict[str, str], error: str
) -> None:
    _verifier, challenge = pkce_pair()
    overrides = {k: v.replace("{base}", sandbox.url) for k, v in overrides.items()}
    resp = sandbox.http.get("/oauth/oauth2/authorize", params=_authorize_params(sandbox, challenge, **overrides))
    query = _redirect_query(resp)
    assert query["error"] == error
    assert query["state"] == "csrf-123"
    assert "code" not in query


def test_missing_state_is_refused(sandbox: Sandbox, key: RSAKey) -> None:
    _verifier, challenge = pkce_pair()
    resp = sandbox.http.get("/oauth/oauth2/authorize", params=_authorize_params(sandbox, challenge, state=""))
    assert _redirect_query(resp)["error"] == "invalid_request"


def test_reused_code_is_refused_and_revokes_what_it_issued(sandbox: Sandbox, key: RSAKey) -> None:
    verifier, challenge = pkce_pair()
    code = _code(sandbox, challenge)
    first = _exchange(sandbox, key, code, verifier).json()
    again = _exchange(sandbox, key, code, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert sandbox.get("Patient", first["access_token"]).status_code == 401


def test_expired_code_is_refused(make_sandbox: SandboxFactory) -> None:
    sb = make_sandbox(code_lifetime_s=0)
    key = sb.register_keyed(CLIENT, scopes=USER_SCOPES, redirect_uris=[REDIRECT])
    verifier, challenge = pkce_pair()
    resp = _exchange(sb, key, _code(sb, challenge), verifier)
    assert resp.json()["error"] == "invalid_grant"
    assert "expired" in resp.json()["error_description"]


def test_refresh_rotates_and_reuse_revokes_the_grant(sandbox: Sandbox, key: RSAKey) -> None:
    # eCW's single-use refresh tokens, pinned alone on the textbook profile.
    assert sandbox.http.put("/_sandbox/behaviour", json={"single_use_refresh": True}).status_code == 200
    verifier, challenge = pkce_pair()
    first = _exchange(sandbox, key, _code(sandbox, challenge), verifier).json()
    second = _refresh(sandbox, key, first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert sandbox.get("Patient", rotated["access_token"]).status_code == 200

    reuse = _refresh(sandbox, key, first["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    # Reuse looks like theft: the whole grant is gone, including the newest tokens.
    assert sandbox.get("Patient", rotated["access_token"]).status_code == 401
    assert _refresh(sandbox, key, rotated["refresh_token"]).json()["error"] == "invalid_grant"


def test_generic_refresh_tokens_stay_valid_and_are_not_reissued(sandbox: Sandbox, key: RSAKey) -> None:
    verifier, challenge = pkce_pair()
    first = _exchange(sandbox, key, _code(sandbox, challenge), verifier).json()
    for _ in range(2):
        again = _refresh(sandbox, key, first["refresh_token"])
        assert again.status_code == 200, again.text
        # RFC 6749 §6: no new refresh token means the client keeps using the one it has.
        assert "refresh_token" not in again.json()
        assert sandbox.get("Patient", again.json()["access_token"]).status_code == 200


def test_refresh_cannot_widen_scope(sandbox: Sandbox, key: RSAKey) -> None:
    verifier, challenge = pkce_pair()
    first = _exchange(sandbox, key, _code(sandbox, challenge), verifier).json()
    form = {
        "grant_type": "refresh_token",
        "refresh_token": first["refresh_token"],
        "scope": "user/Patient.read launch/patient",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": signed_assertion(key, CLIENT, sandbox.token_url),
    }
    assert sandbox.request_token(form).json()["error"] == "invalid_scope"


def test_expired_refresh_token_needs_new_consent(make_sandbox: SandboxFactory) -> None:
    sb = make_sandbox(refresh_token_lifetime_s=0)
    key = sb.register_keyed(CLIENT, scopes=USER_SCOPES, redirect_uris=[REDIRECT])
    verifier, challenge = pkce_pair()
    first = _exchange(sb, key, _code(sb, challenge), verifier).json()
    assert "expired" in _refresh(sb, key, first["refresh_token"]).json()["error_description"]


def test_revoking_the_refresh_token_ends_the_grant(sandbox: Sandbox, key: RSAKey) -> None:
    verifier, challenge = pkce_pair()
    tokens = _exchange(sandbox, key, _code(sandbox, challenge), verifier).json()
    assert _revoke(sandbox, key, tokens["refresh_token"]).status_code == 200
    assert sandbox.get("Patient", tokens["access_token"]).status_code == 401
    assert _refresh(sandbox, key, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoking_an_access_token(sandbox: Sandbox, key: RSAKey) -> None:
    verifier, challenge = pkce_pair()
    tokens = _exchange(sandbox, key, _code(sandbox, challenge), verifier).json()
    assert _revoke(sandbox, key, tokens["access_token"]).status_code == 200
    assert sandbox.get("Patient", tokens["access_token"]).status_code == 401
    assert _refresh(sandbox, key, tokens["refresh_token"]).status_code == 200
    assert _revoke(sandbox, key, "never-issued").status_code == 200


def test_revoke_refuses_another_clients_token_and_needs_authentication(sandbox: Sandbox, key: RSAKey) -> None:
    sandbox.register("other", client_secret="s")
    other_token = sandbox.basic_token("other", "s")
    assert _revoke(sandbox, key, other_token).status_code == 400
    assert sandbox.get("Patient", other_token).status_code == 200
    unauthenticated = sandbox.http.post("/oauth/oauth2/revoke", data={"token": other_token})
    assert unauthenticated.status_code == 401


def test_no_refresh_token_without_offline_access(sandbox: Sandbox, key: RSAKey) -> None:
    verifier, challenge = pkce_pair()
    body = _exchange(sandbox, key, _code(sandbox, challenge, scope="user/Patient.read"), verifier).json()
    assert "refresh_token" not in body


def test_confidential_client_with_secret_and_public_client(sandbox: Sandbox) -> None:
    sandbox.register("secret-app", client_secret="pw", scopes=USER_SCOPES, redirect_uris=[REDIRECT])
    sandbox.register("public-app", scopes=USER_SCOPES, redirect_uris=[REDIRECT])
    for client, auth in (("secret-app", ("secret-app", "pw")), ("public-app", None)):
        verifier, challenge = pkce_pair()
        code = _code(sandbox, challenge, client_id=client)
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
        if auth is None:
            form["client_id"] = client
        resp = sandbox.request_token(form, auth=auth)
        assert resp.status_code == 200, resp.text
        # healow gives public clients no refresh token.
        assert ("refresh_token" in resp.json()) is (auth is not None)


def test_code_is_bound_to_its_client(sandbox: Sandbox, key: RSAKey) -> None:
    sandbox.register("thief", client_secret="pw", scopes=USER_SCOPES, redirect_uris=[REDIRECT])
    verifier, challenge = pkce_pair()
    code = _code(sandbox, challenge)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    assert sandbox.request_token(form, auth=("thief", "pw")).json()["error"] == "invalid_grant"


def test_patient_scopes_confine_to_the_launch_patient(sandbox: Sandbox, key: RSAKey) -> None:
    verifier, challenge = pkce_pair()
    code = _code(sandbox, challenge, scope="launch/patient patient/Patient.read")
    body = _exchange(sandbox, key, code, verifier).json()
    patient = body["patient"]
    assert sandbox.get(f"Patient/{patient}", body["access_token"]).status_code == 200
    search = sandbox.get("Patient", body["access_token"]).json()
    assert [e["resource"]["id"] for e in search["entry"]] == [patient]
    sandbox.register("admin", client_secret="s")
    someone_else = sandbox.patient_ids(sandbox.basic_token("admin", "s"), count=3)[-1]
    assert sandbox.get(f"Patient/{someone_else}", body["access_token"]).status_code == 403
