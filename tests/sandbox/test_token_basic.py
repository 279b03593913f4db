"""client_secret_basic at the token endpoint (RFC 6749 §2.3.1) and client-authentication refusals."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

from tests.sandbox.conftest import SandboxFactory
from tests.sandbox.support import JWT_BEARER, Sandbox, new_key, signed_assertion

SECRET = "s3cr3t:with/odd+chars %"


def test_basic_credentials_are_form_urlencoded_before_base64(sandbox: Sandbox) -> None:
    sandbox.register("odd:client", client_secret=SECRET)
    raw = f"{quote_plus('odd:client')}:{quote_plus(SECRET)}"
    header = "Basic " + base64.b64encode(raw.encode()).decode()
    resp = sandbox.request_token({"grant_type": "client_credentials"}, headers={"Authorization": header})
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "bearer"


def test_wrong_secret_is_invalid_client_with_basic_challenge_and_no_echo(sandbox: Sandbox) -> None:
    sandbox.register("basic-client", client_secret=SECRET)
    resp = sandbox.request_token({"grant_type": "client_credentials"}, auth=("basic-client", "guess-1234"))
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    assert resp.headers["www-authenticate"].startswith("Basic")
    assert "guess-1234" not in resp.text
    assert SECRET not in resp.text


def test_unknown_basic_client_is_invalid_client(sandbox: Sandbox) -> None:
    resp = sandbox.request_token({"grant_type": "client_credentials"}, auth=("ghost", "x"))
    assert resp.status_code == 401
    assert "unknown client" in resp.json()["error_description"]


def test_keyed_client_cannot_use_a_secret(sandbox: Sandbox) -> None:
    sandbox.register_keyed("keys-only")
    resp = sandbox.request_token({"grant_type": "client_credentials"}, auth=("keys-only", "anything"))
    assert resp.status_code == 401
    assert "private_key_jwt" in resp.json()["error_description"]


def test_client_secret_post_is_refused_with_a_hint(sandbox: Sandbox) -> None:
    sandbox.register("basic-client", client_secret=SECRET)
    form = {"grant_type": "client_credentials", "client_id": "basic-client", "client_secret": SECRET}
    resp = sandbox.request_token(form)
    assert resp.status_code == 401
    assert "HTTP Basic" in resp.json()["error_description"]


def test_two_authentication_methods_at_once_are_refused(sandbox: Sandbox) -> None:
    key = sandbox.register_keyed("both", client_secret=SECRET)
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": signed_assertion(key, "both", sandbox.token_url),
    }
    resp = sandbox.request_token(form, auth=("both", SECRET))
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_request"


def test_public_client_cannot_use_client_credentials(sandbox: Sandbox) -> None:
    sandbox.register("public-app", redirect_uris=["https://app.example/cb"], scopes=["user/Patient.read"])
    resp = sandbox.request_token({"grant_type": "client_credentials", "client_id": "public-app"})
    assert resp.status_code == 400
    assert resp.json()["error"] == "unauthorized_client"


def test_assertion_client_id_must_match_body_client_id(sandbox: Sandbox) -> None:
    key = sandbox.register_keyed("asserting")
    form = {
        "grant_type": "client_credentials",
        "client_id": "someone-else",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": signed_assertion(key, "asserting", sandbox.token_url),
    }
    assert sandbox.request_token(form).json()["error"] == "invalid_client"


def test_configured_issuer_decides_the_expected_aud(make_sandbox: SandboxFactory) -> None:
    sb = make_sandbox(issuer="https://ehr.example.test")
    key = new_key()
    sb.register_keyed("behind-proxy", key)
    local_aud = sb.request_token(sb.assertion_form(signed_assertion(key, "behind-proxy", sb.token_url)))
    assert local_aud.status_code == 401
    assert "https://ehr.example.test/oauth/oauth2/token" in local_aud.json()["error_description"]
    public_aud = signed_assertion(key, "behind-proxy", "https://ehr.example.test/oauth/oauth2/token")
    assert sb.request_token(sb.assertion_form(public_aud)).status_code == 200
