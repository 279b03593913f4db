"""Standalone launch end to end against the sandbox (SPEC §3): authorize → consent → callback →
FHIR call → refresh (rotation) → revoke → status; forged, replayed and expired states, a wrong
PKCE verifier and an EHR-side revocation are each refused cleanly (4xx/502, never 500)."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select, text, update

from tests.smart.conftest import CLIENT_ID, SmartEnv
from tests.support import make_tenant, token_for
from vitalbridge.db.base import utcnow
from vitalbridge.errors import EhrAuthError
from vitalbridge.smart.assertion import JWT_BEARER, client_assertion
from vitalbridge.smart.models import REFRESH_TOKEN_PURPOSE, VERIFIER_PURPOSE, EhrToken, GrantKind, LaunchState
from vitalbridge.tenancy.models import Role


def start(env: SmartEnv, headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
    return env.api.get(
        "/api/v1/ecw/auth/authorize/", params={"practice": "JAFJCD", **params}, headers=headers or env.tenant.headers
    )


def consent(env: SmartEnv, authorization_url: str) -> str:
    """The user approves at the EHR; returns where the EHR sends the browser (the callback)."""
    resp = env.sandbox.http.get(authorization_url + "&sandbox_auto_approve=1", follow_redirects=False)
    assert resp.status_code == 302, resp.text
    return resp.headers["location"]


def connect(env: SmartEnv) -> dict[str, Any]:
    started = start(env)
    assert started.status_code == 200, started.text
    callback = env.api.get(consent(env, started.json()["authorization_url"]))
    assert callback.status_code == 200, callback.text
    result: dict[str, Any] = callback.json()
    return result


def status(env: SmartEnv) -> dict[str, Any]:
    resp = env.api.get("/api/v1/ecw/auth/status/", params={"practice": "JAFJCD"}, headers=env.tenant.headers)
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


def grant_row(env: SmartEnv) -> EhrToken:
    with env.hub.sessions() as session:
        return session.scalars(select(EhrToken).where(EhrToken.kind == GrantKind.standalone)).one()


def test_full_standalone_flow(smart_env: SmartEnv) -> None:
    env = smart_env
    # eCW's single-use (rotating) refresh tokens, so the flow below sees rotation.
    assert env.sandbox.http.put("/_sandbox/behaviour", json={"single_use_refresh": True}).status_code == 200
    started = start(env)
    assert started.status_code == 200, started.text
    body = started.json()
    url = urlsplit(body["authorization_url"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{env.sandbox.url}/oauth/oauth2/authorize"
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == f"{env.hub_url}/api/v1/ecw/auth/callback/"
    assert query["state"] == body["state"]
    assert query["aud"] == env.sandbox.base()
    assert query["code_challenge_method"] == "S256"
    assert set(query["scope"].split()) == {
        "user/Patient.read",
        "user/Observation.read",
        "user/Observation.write",
        "offline_access",
    }
    # Server side: only the state's hash; the verifier sealed, and it matches the challenge.
    with env.hub.sessions() as session:
        launch = session.scalars(select(LaunchState)).one()
    assert launch.state_hash != body["state"]
    verifier = env.hub.sealer.open_text(launch.verifier_sealed, VERIFIER_PURPOSE)
    assert verifier.encode() not in launch.verifier_sealed
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert query["code_challenge"] == challenge

    location = consent(env, body["authorization_url"])
    assert location.startswith(f"{env.hub_url}/api/v1/ecw/auth/callback/?")
    callback = env.api.get(location)  # no hub token: the browser arrives from the EHR
    assert callback.status_code == 200, callback.text
    assert callback.json()["status"] == "connected"
    assert callback.json()["refresh_token_issued"] is True
    report = status(env)
    assert report["oauth2_configured"] is True
    assert report["oauth2_token_expires"] is not None
    assert report["oauth2_authorized_by"].startswith("token:")

    client = env.client()
    assert client.get(env.practice, "Patient", params={"_count": 1}, grant=GrantKind.standalone).status_code == 200
    first_refresh = grant_row(env).refresh_token_sealed

    # Silent refresh with rotation: a new refresh token is stored.
    renewed = env.smart.standalone.token(env.practice, force=True)
    assert grant_row(env).refresh_token_sealed != first_refresh
    assert client.get(env.practice, "Patient", params={"_count": 1}, grant=GrantKind.standalone).status_code == 200
    stats = env.sandbox.stats()["token_requests_by_grant_type"]
    assert stats == {"authorization_code": 1, "refresh_token": 1}

    revoked = env.api.post("/api/v1/ecw/auth/revoke/", json={"practice": "JAFJCD"}, headers=env.tenant.headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["confirmed_by_ehr"] is True
    report = status(env)
    assert report["oauth2_configured"] is False
    assert "disconnected" in report["oauth2_reason"]
    assert report["oauth2_token_expires"] is None
    # The EHR no longer honours the grant's tokens.
    assert env.sandbox.get("Patient", renewed.value).status_code == 401
    with pytest.raises(EhrAuthError, match="authorize again"):
        client.get(env.practice, "Patient", grant=GrantKind.standalone)


def test_forged_replayed_and_expired_states_are_refused(smart_env: SmartEnv) -> None:
    env = smart_env
    forged = env.api.get("/api/v1/ecw/auth/callback/", params={"code": "abc", "state": "made-up"})
    assert forged.status_code == 400
    assert "unknown state" in forged.json()["detail"]
    missing = env.api.get("/api/v1/ecw/auth/callback/", params={"code": "abc"})
    assert missing.status_code == 400

    started = start(env).json()
    location = consent(env, started["authorization_url"])
    assert env.api.get(location).status_code == 200
    replayed = env.api.get(location)
    assert replayed.status_code == 400
    assert "already used" in replayed.json()["detail"]

    late = start(env).json()
    with env.hub.sessions() as session, session.begin():
        session.execute(update(LaunchState).where(LaunchState.used_at.is_(None)).values(expires_at=utcnow()))
    expired = env.api.get(consent(env, late["authorization_url"]))
    assert expired.status_code == 400
    assert "expired" in expired.json()["detail"]
    # Only the one real exchange reached the EHR.
    assert env.sandbox.stats()["token_requests_by_grant_type"] == {"authorization_code": 1}


def test_wrong_verifier_is_refused_by_the_ehr_and_shown_not_crashed(smart_env: SmartEnv) -> None:
    env = smart_env
    started = start(env).json()
    with env.hub.sessions() as session, session.begin():
        session.execute(
            update(LaunchState).values(verifier_sealed=env.hub.sealer.seal_text("x" * 64, VERIFIER_PURPOSE))
        )
    resp = env.api.get(consent(env, started["authorization_url"]))
    assert resp.status_code == 502
    assert resp.json()["oauth_error"] == "invalid_grant"
    assert "PKCE verifier" in resp.json()["detail"]
    report = status(env)
    assert report["oauth2_configured"] is False
    assert "no user has authorized" in report["oauth2_reason"]


def test_user_declining_at_the_ehr_is_a_clear_400(smart_env: SmartEnv) -> None:
    started = start(smart_env).json()
    resp = smart_env.api.get("/api/v1/ecw/auth/callback/", params={"state": started["state"], "error": "access_denied"})
    assert resp.status_code == 400
    assert "declined" in resp.json()["detail"]
    again = smart_env.api.get("/api/v1/ecw/auth/callback/", params={"state": started["state"], "code": "x"})
    assert again.status_code == 400


def test_revocation_at_the_ehr_shows_on_the_status_page(smart_env: SmartEnv) -> None:
    env = smart_env
    connect(env)
    refresh = env.hub.sealer.open_text(grant_row(env).refresh_token_sealed or b"", REFRESH_TOKEN_PURPOSE)
    # Someone revokes the grant at the EHR (RFC 7009), behind the hub's back.
    assertion = client_assertion(
        env.smart.keyring.signing_key(env.tenant.org_id), client_id=CLIENT_ID, token_url=env.sandbox.token_url
    )
    resp = env.sandbox.http.post(
        "/oauth/oauth2/revoke",
        data={"token": refresh, "client_assertion_type": JWT_BEARER, "client_assertion": assertion},
    )
    assert resp.status_code == 200
    with pytest.raises(EhrAuthError) as refused:
        env.smart.standalone.token(env.practice, force=True)
    assert refused.value.oauth_error == "invalid_grant"
    report = status(env)
    assert report["oauth2_configured"] is False
    assert "invalid_grant" in report["oauth2_reason"]
    assert grant_row(env).refresh_token_sealed is None
    # And a later use says so again, without asking the EHR.
    before = env.sandbox.stats()["token_requests"]
    with pytest.raises(EhrAuthError, match="no longer valid"):
        env.smart.standalone.token(env.practice)
    assert env.sandbox.stats()["token_requests"] == before


def test_expiry_triggers_a_silent_refresh(smart_env: SmartEnv) -> None:
    env = smart_env
    connect(env)
    with env.hub.sessions() as session, session.begin():
        session.execute(update(EhrToken).values(renew_at=utcnow() - timedelta(seconds=1)))
    client = env.client()
    assert client.get(env.practice, "Patient", params={"_count": 1}, grant=GrantKind.standalone).status_code == 200
    assert env.sandbox.stats()["token_requests_by_grant_type"]["refresh_token"] == 1


def test_authorize_endpoint_is_discovered_when_not_configured(smart_env: SmartEnv) -> None:
    smart_env.add_practice("PRAC2", authorize_url=None)
    resp = smart_env.api.get(
        "/api/v1/ecw/auth/authorize/", params={"practice": "PRAC2"}, headers=smart_env.tenant.headers
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["authorization_url"].startswith(f"{smart_env.sandbox.url}/oauth/oauth2/authorize?")
    # Nothing to discover from: the practice is not ready for a launch (409, not a hub fault).
    smart_env.add_practice("NOPE", authorize_url=None, fhir_base_url=f"{smart_env.sandbox.url}/nowhere/NOPE")
    refused = smart_env.api.get(
        "/api/v1/ecw/auth/authorize/", params={"practice": "NOPE"}, headers=smart_env.tenant.headers
    )
    assert refused.status_code == 409
    assert "authorize_url" in refused.json()["detail"]


def test_other_tenants_and_roles(smart_env: SmartEnv) -> None:
    other = make_tenant(smart_env.hub, "Clinic B")
    assert start(smart_env, headers=other.headers).status_code == 404
    other_status = smart_env.api.get("/api/v1/ecw/auth/status/", headers=other.headers)
    assert other_status.json() == {"practices": []}
    assert (
        smart_env.api.get("/api/v1/ecw/auth/status/", params={"practice": "JAFJCD"}, headers=other.headers).status_code
        == 404
    )
    assert (
        smart_env.api.post("/api/v1/ecw/test/jwt/", json={"practice": "JAFJCD"}, headers=other.headers).status_code
        == 404
    )
    clinician = token_for(smart_env.hub, smart_env.tenant.org_id, Role.clinician)
    assert start(smart_env, headers={"Authorization": f"Bearer {clinician}"}).status_code == 403
    assert smart_env.api.get("/api/v1/ecw/auth/authorize/", params={"practice": "JAFJCD"}).status_code == 401


def test_state_is_not_stored_in_clear(smart_env: SmartEnv) -> None:
    started = start(smart_env).json()
    with smart_env.hub.engine.connect() as conn:
        rows = " ".join(str(r) for r in conn.execute(text("SELECT * FROM smart_launch_states")))
    assert started["state"] not in rows


def test_tokens_at_rest_are_unreadable_without_the_kek(smart_env: SmartEnv) -> None:
    from vitalbridge.crypto.sealing import Sealer
    from vitalbridge.errors import ConfigurationError
    from vitalbridge.smart.models import ACCESS_TOKEN_PURPOSE

    env = smart_env
    connect(env)
    env.client().get(env.practice, "metadata")  # a backend token too
    with env.hub.engine.connect() as conn:
        rows = conn.execute(text("SELECT kind, access_token_sealed, refresh_token_sealed FROM smart_tokens")).all()
    assert {r[0] for r in rows} == {"backend", "standalone"}
    stranger = Sealer(b"\x02" * 32)
    for _kind, access_sealed, refresh_sealed in rows:
        access = env.hub.sealer.open_text(bytes(access_sealed), ACCESS_TOKEN_PURPOSE)
        assert access.encode() not in bytes(access_sealed)
        with pytest.raises(ConfigurationError):
            stranger.open(bytes(access_sealed), ACCESS_TOKEN_PURPOSE)
        if refresh_sealed is not None:
            refresh = env.hub.sealer.open_text(bytes(refresh_sealed), REFRESH_TOKEN_PURPOSE)
            assert refresh.encode() not in bytes(refresh_sealed)
            with pytest.raises(ConfigurationError):
                stranger.open(bytes(refresh_sealed), REFRESH_TOKEN_PURPOSE)
    # And a whole-table dump shows none of them either.
    with env.hub.engine.connect() as conn:
        dump = repr(conn.execute(text("SELECT * FROM smart_tokens")).all())
    for _kind, access_sealed, _refresh in rows:
        assert env.hub.sealer.open_text(bytes(access_sealed), ACCESS_TOKEN_PURPOSE) not in dump
