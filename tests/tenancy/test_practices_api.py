"""Practices API and bearer-token auth, on both database backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.support import api_client, make_tenant, token_for
from vitalbridge.runtime import Hub
from vitalbridge.tenancy import service
from vitalbridge.tenancy.models import ApiToken, Practice, Role

PRACTICE = {
    "practice_code": "JAFJCD",
    "name": "Main Street Family Medicine",
    "fhir_base_url": "https://fhir.example.org/fhir/r4/JAFJCD",
    "token_url": "https://oauth.example.org/oauth/oauth2/token",
    "client_id": "client-123",
    "rate_limit_per_minute": 250,
}


def test_register_and_list_practice(hub: Hub) -> None:
    tenant = make_tenant(hub, "Org A")
    with api_client(hub) as client:
        created = client.post("/api/v1/practices/", json=PRACTICE, headers=tenant.headers)
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["practice_code"] == "JAFJCD"
        assert body["auth_method"] == "private_key_jwt"
        assert body["scopes"] == ["system/Patient.read", "system/Observation.write"]
        listed = client.get("/api/v1/practices/", headers=tenant.headers).json()
        assert [p["id"] for p in listed] == [body["id"]]
        dup = client.post("/api/v1/practices/", json=PRACTICE, headers=tenant.headers)
        assert dup.status_code == 409


def test_practice_validation_names_the_field(hub: Hub) -> None:
    tenant = make_tenant(hub, "Org A")
    bad = {**PRACTICE, "fhir_base_url": "not a url", "practice_code": "has space"}
    with api_client(hub) as client:
        resp = client.post("/api/v1/practices/", json=bad, headers=tenant.headers)
    assert resp.status_code == 422
    locs = {tuple(e["loc"]) for e in resp.json()["detail"]}
    assert ("body", "fhir_base_url") in locs
    assert ("body", "practice_code") in locs


def test_client_secret_basic_requires_secret_and_seals_it(hub: Hub) -> None:
    tenant = make_tenant(hub, "Org A")
    with api_client(hub) as client:
        missing = client.post(
            "/api/v1/practices/", json={**PRACTICE, "auth_method": "client_secret_basic"}, headers=tenant.headers
        )
        assert missing.status_code == 422
        assert missing.json()["errors"][0]["loc"] == ["body", "client_secret"]
        ok = client.post(
            "/api/v1/practices/",
            json={**PRACTICE, "auth_method": "client_secret_basic", "client_secret": "s3cr3t-value-xyz"},
            headers=tenant.headers,
        )
        assert ok.status_code == 201
        assert ok.json()["client_secret_configured"] is True
        assert "s3cr3t-value-xyz" not in ok.text
    with hub.sessions() as session:
        row = session.scalars(select(Practice)).one()
        assert row.client_secret_sealed is not None
        assert b"s3cr3t-value-xyz" not in row.client_secret_sealed
        assert service.practice_client_secret(row, hub.sealer) == "s3cr3t-value-xyz"


def test_tenants_see_only_their_practices(hub: Hub) -> None:
    a = make_tenant(hub, "Org A")
    b = make_tenant(hub, "Org B")
    with api_client(hub) as client:
        pid = client.post("/api/v1/practices/", json=PRACTICE, headers=a.headers).json()["id"]
        assert client.get("/api/v1/practices/", headers=b.headers).json() == []
        assert client.get(f"/api/v1/practices/{pid}", headers=b.headers).status_code == 404
        assert client.get(f"/api/v1/practices/{pid}", headers=a.headers).status_code == 200
        # The same practice code at another EHR tenant, with B's own client, is B's to register.
        own = {**PRACTICE, "fhir_base_url": "https://fhir.example.org/fhir/r4/B/JAFJCD", "client_id": "client-b"}
        assert client.post("/api/v1/practices/", json=own, headers=b.headers).status_code == 201


def test_bearer_auth_refusals(hub: Hub) -> None:
    tenant = make_tenant(hub, "Org A")
    with api_client(hub) as client:
        none = client.get("/api/v1/practices/")
        assert none.status_code == 401
        assert none.headers["WWW-Authenticate"] == "Bearer"
        assert client.get("/api/v1/practices/", headers={"Authorization": "Bearer vb_nope"}).status_code == 401
        clinician = token_for(hub, tenant.org_id, Role.clinician)
        forbidden = client.post("/api/v1/practices/", json=PRACTICE, headers={"Authorization": f"Bearer {clinician}"})
        assert forbidden.status_code == 403
        assert client.get("/api/v1/practices/", headers={"Authorization": f"Bearer {clinician}"}).status_code == 200


def test_expired_and_revoked_tokens_are_refused_and_use_is_recorded(hub: Hub) -> None:
    tenant = make_tenant(hub, "Org A")
    with hub.sessions() as session, session.begin():
        _r, expired = service.create_api_token(
            session, tenant.org_id, Role.admin, expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
        row, revoked = service.create_api_token(session, tenant.org_id, Role.admin)
        service.revoke_api_token(session, tenant.org_id, row.id)
    with api_client(hub) as client:
        for tok in (expired, revoked):
            assert client.get("/api/v1/practices/", headers={"Authorization": f"Bearer {tok}"}).status_code == 401
        assert client.get("/api/v1/practices/", headers=tenant.headers).status_code == 200
    with hub.sessions() as session:
        used = session.scalar(select(ApiToken).where(ApiToken.token_hash == service.hash_token(tenant.token)))
        assert used is not None
        assert used.last_used_at is not None
        # Only the hash is stored.
        assert tenant.token not in {t.token_hash for t in session.scalars(select(ApiToken))}
