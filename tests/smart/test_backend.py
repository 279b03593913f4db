"""SMART Backend Services against the sandbox EHR over real HTTP (SPEC §3): private_key_jwt and
client_secret_basic, errors that say what to fix, key rotation, the shared single-flight cache
and renewal before expiry."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.smart.conftest import CLIENT_ID, SmartEnv
from vitalbridge.audit.models import AuditEntry
from vitalbridge.ehr.client import EhrClient
from vitalbridge.errors import EhrAuthError, EhrAuthUnavailable
from vitalbridge.runtime import build_hub
from vitalbridge.smart import keys
from vitalbridge.smart.assertion import JWT_BEARER, client_assertion
from vitalbridge.smart.models import EhrToken, GrantKind
from vitalbridge.smart.services import build_smart
from vitalbridge.tenancy.models import AuthMethod


def token_entries(env: SmartEnv) -> list[AuditEntry]:
    with env.hub.sessions() as session:
        return list(
            session.scalars(select(AuditEntry).where(AuditEntry.action == "ehr.token").order_by(AuditEntry.seq))
        )


def test_private_key_jwt_token_via_the_api(smart_env: SmartEnv) -> None:
    resp = smart_env.api.post("/api/v1/ecw/test/jwt/", json={"practice": "JAFJCD"}, headers=smart_env.tenant.headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    with smart_env.hub.sessions() as session:
        [active] = [
            k for k in keys.list_keys(session, organization_id=smart_env.tenant.org_id) if k.state.value == "active"
        ]
    assert body == {
        "status": "success",
        "practice": "JAFJCD",
        "auth_method": "private_key_jwt",
        "token_type": "bearer",
        "expires_in": 3600,
        "scope": "system/Patient.read system/Observation.read system/Observation.write",
        "kid": active.kid,
    }
    stats = smart_env.sandbox.stats()
    assert stats["token_requests_by_grant_type"] == {"client_credentials": 1}
    assert stats["token_requests_by_client"] == {CLIENT_ID: 1}
    [entry] = token_entries(smart_env)
    assert entry.outcome == "success"
    assert entry.detail["kid"] == active.kid
    status = smart_env.api.get(
        "/api/v1/ecw/auth/status/", params={"practice": "JAFJCD"}, headers=smart_env.tenant.headers
    ).json()
    assert status["jwt_configured"] is True
    assert status["jwt_last_success"] is not None
    assert status["signing_kid"] == active.kid


def test_client_secret_basic_token(smart_env: SmartEnv) -> None:
    conn = smart_env.add_practice(
        "PRAC2", client_id="basic-client", auth_method=AuthMethod.client_secret_basic, client_secret="s3cret:/+&"
    )
    smart_env.sandbox.register("basic-client", client_secret="s3cret:/+&", practices=["PRAC2"])
    token = smart_env.smart.backend.token(conn)
    assert token.token_type == "bearer"
    assert smart_env.client().get(conn, "metadata").status_code == 200
    assert smart_env.sandbox.stats()["token_requests_by_client"] == {"basic-client": 1}


def test_wrong_client_secret_is_an_actionable_error(smart_env: SmartEnv) -> None:
    smart_env.add_practice(
        "PRAC2", client_id="basic-client", auth_method=AuthMethod.client_secret_basic, client_secret="wrong"
    )
    smart_env.sandbox.register("basic-client", client_secret="right", practices=["PRAC2"])
    resp = smart_env.api.post("/api/v1/ecw/test/jwt/", json={"practice": "PRAC2"}, headers=smart_env.tenant.headers)
    assert resp.status_code == 200  # the test ran; its finding is the refusal
    body = resp.json()
    assert body["status"] == "error"
    assert body["error"] == "ehr_auth_failed"
    assert body["oauth_error"] == "invalid_client"
    assert "client secret" in body["detail"]
    assert "wrong" not in resp.text


def test_unregistered_jwks_gives_invalid_client_naming_the_jwks_url_and_kid(smart_env: SmartEnv) -> None:
    smart_env.register_client(jwks_url=f"{smart_env.hub_url}/not-the-jwks.json")
    resp = smart_env.api.post("/api/v1/ecw/test/jwt/", json={}, headers=smart_env.tenant.headers)
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "error"
    assert body["oauth_error"] == "invalid_client"
    assert f"{smart_env.hub_url}{smart_env.jwks_path}" in body["detail"]
    with smart_env.hub.sessions() as session:
        kid = keys.KeyRing(smart_env.hub.sessions, smart_env.hub.sealer).signing_key(smart_env.tenant.org_id).kid
        assert session is not None
    assert kid in body["detail"]
    status = smart_env.api.get("/api/v1/ecw/auth/status/", headers=smart_env.tenant.headers).json()["practices"][0]
    assert status["jwt_configured"] is False
    assert status["jwt_last_error"] == "invalid_client"
    assert "JWKS" in status["jwt_reason"]
    [entry] = token_entries(smart_env)
    assert (entry.outcome, entry.detail["oauth_error"], entry.status_code) == ("failure", "invalid_client", 401)


def test_unregistered_scope_lists_the_scopes(smart_env: SmartEnv) -> None:
    smart_env.register_client(scopes=["system/Patient.read"])
    with pytest.raises(EhrAuthError) as refused:
        smart_env.smart.backend.token(smart_env.practice)
    assert refused.value.oauth_error == "invalid_scope"
    assert "system/Observation.write" in str(refused.value)


def test_unreachable_token_endpoint_is_transient_and_says_so(smart_env: SmartEnv) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    conn = smart_env.add_practice("PRAC2", token_url=f"http://127.0.0.1:{dead_port}/oauth/oauth2/token")
    with pytest.raises(EhrAuthUnavailable) as failed:
        smart_env.smart.backend.token(conn)
    assert failed.value.transient
    assert "unreachable" in str(failed.value)
    assert f"127.0.0.1:{dead_port}" in str(failed.value)


def test_rotated_key_works_through_grace_and_retired_key_stops(smart_env: SmartEnv) -> None:
    hub, conn, smart = smart_env.hub, smart_env.practice, smart_env.smart
    ring = smart.keyring
    org = smart_env.tenant.org_id
    old = ring.signing_key(org).kid
    with hub.sessions() as session, session.begin():
        new = keys.rotate(session, hub.sealer, grace_s=3600, organization_id=org).kid
    # Grace period: the old key signs, the new one is already published.
    assert smart.backend.token(conn, force=True).value
    assert ring.signing_key(org).kid == old
    with hub.sessions() as session, session.begin():
        keys.rotate(session, hub.sealer, grace_s=3600, immediate=True, organization_id=org)
    assert ring.signing_key(org).kid == new
    assert smart.backend.token(conn, force=True).value
    # Until it is retired the old key is still accepted; after, the EHR refuses it.
    assert post_assertion(smart_env, ring.key(old)).status_code == 200
    with hub.sessions() as session, session.begin():
        keys.retire(session, old, organization_id=org)
    refused = post_assertion(smart_env, ring.key(old))
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert smart.backend.token(conn, force=True).value


def post_assertion(env: SmartEnv, key: keys.LoadedKey) -> Any:
    assertion = client_assertion(key, client_id=CLIENT_ID, token_url=env.sandbox.token_url)
    return env.sandbox.request_token(
        {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER, "client_assertion": assertion}
    )


def test_fifty_concurrent_calls_after_cold_start_fetch_one_token(smart_env: SmartEnv) -> None:
    client = smart_env.client()
    barrier = threading.Barrier(50)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            barrier.wait()
            statuses.append(client.get(smart_env.practice, "metadata").status_code)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert statuses == [200] * 50
    stats = smart_env.sandbox.stats()
    assert stats["token_requests"] == 1
    assert stats["fhir_requests_by_practice"]["JAFJCD"] == 50


def test_two_hub_processes_share_one_token(smart_env: SmartEnv) -> None:
    """A second hub on the same database (its own engine and pool, as another process has)."""
    other = build_hub(smart_env.hub.settings)
    try:
        smart_env.client().get(smart_env.practice, "metadata")
        EhrClient(other).get(smart_env.practice, "metadata")
        assert smart_env.sandbox.stats()["token_requests"] == 1
    finally:
        other.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize("sandbox_options", [{"token_lifetime_s": 5}])
def test_renewal_happens_before_expiry(smart_env: SmartEnv) -> None:
    clock = FakeClock()
    smart = build_smart(smart_env.hub, clock=clock)
    try:
        client = EhrClient(smart_env.hub, smart)
        client.get(smart_env.practice, "metadata")
        first = smart.backend.token(smart_env.practice)
        assert first.lifetime_s == 5
        with smart_env.hub.sessions() as session:
            row = session.scalars(select(EhrToken).where(EhrToken.kind == GrantKind.backend)).one()
            assert row.renew_at is not None
            assert row.expires_at is not None
            # 5 s tokens renew at half-life, not 300 s before expiry (which would be never valid).
            assert row.expires_at - row.renew_at == timedelta(seconds=2.5)
        clock.now += timedelta(seconds=2)
        client.get(smart_env.practice, "metadata")
        assert smart_env.sandbox.stats()["token_requests"] == 1
        clock.now += timedelta(seconds=1)  # 3 s: past renewal, before expiry
        client.get(smart_env.practice, "metadata")
        assert smart_env.sandbox.stats()["token_requests"] == 2
        second = smart.backend.token(smart_env.practice)
        assert second.generation == first.generation + 1
        assert second.value != first.value
        assert second.expires_at > first.expires_at
    finally:
        smart.close()


def test_a_401_renews_the_token_once_and_retries(smart_env: SmartEnv) -> None:
    client = smart_env.client()
    client.get(smart_env.practice, "metadata")
    # The EHR forgets every token it issued (as after a key change on its side).
    assert smart_env.sandbox.http.post("/_sandbox/reset", json={"clients": False}).status_code == 200
    resp = client.get(smart_env.practice, "Patient", params={"_count": 1})
    assert resp.status_code == 200
    assert smart_env.sandbox.stats()["token_requests"] == 1  # stats were reset: this is the renewal
    with smart_env.hub.sessions() as session:
        calls = list(
            session.scalars(select(AuditEntry).where(AuditEntry.action == "ehr.call").order_by(AuditEntry.seq))
        )
    assert [(c.status_code, c.detail["attempt"]) for c in calls] == [(200, 1), (401, 1), (200, 2)]
