"""Users and API tokens over the API; auth events in the audit trail."""

from __future__ import annotations

from sqlalchemy import select

from tests.support import api_client, make_tenant, token_for
from vitalbridge.audit.models import AuditEntry
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import ApiToken, Role


def _audit(hub: Hub, action: str) -> list[AuditEntry]:
    with hub.sessions() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)))


def test_users_are_created_listed_and_unique(hub: Hub) -> None:
    a = make_tenant(hub, "Org A")
    with api_client(hub) as client:
        created = client.post(
            "/api/v1/users/", json={"email": "Nurse@Clinic.example", "role": "clinician"}, headers=a.headers
        )
        assert created.status_code == 201, created.text
        user = created.json()
        assert user["email"] == "nurse@clinic.example"
        assert client.get("/api/v1/users/", headers=a.headers).json() == [user]
        assert client.get(f"/api/v1/users/{user['id']}", headers=a.headers).json() == user
        dup = client.post("/api/v1/users/", json={"email": "nurse@clinic.example"}, headers=a.headers)
        assert dup.status_code == 409
        bad = client.post("/api/v1/users/", json={"email": "not-an-email", "role": "boss"}, headers=a.headers)
        assert bad.status_code == 422
        assert {tuple(e["loc"]) for e in bad.json()["detail"]} == {("body", "email"), ("body", "role")}
    [entry] = _audit(hub, "user.created")
    assert entry.resource_ids == [user["id"]]
    assert "nurse" not in str(entry.detail)


def test_token_lifecycle(hub: Hub) -> None:
    a = make_tenant(hub, "Org A")
    with api_client(hub) as client:
        user = client.post("/api/v1/users/", json={"email": "int@a.example", "role": "integration"}, headers=a.headers)
        made = client.post(
            "/api/v1/tokens/",
            json={"role": "integration", "name": "gateway", "user_id": user.json()["id"], "expires_in_days": 30},
            headers=a.headers,
        )
        assert made.status_code == 201, made.text
        token = made.json()
        raw = token.pop("token")
        assert raw.startswith("vb_")
        assert raw.startswith(token["prefix"])
        assert token["expires_at"] is not None
        assert token["last_used_at"] is None
        headers = {"Authorization": f"Bearer {raw}"}
        assert client.get("/api/v1/practices/", headers=headers).status_code == 200
        listed = client.get("/api/v1/tokens/", headers=a.headers)
        assert raw not in listed.text
        mine = next(t for t in listed.json() if t["id"] == token["id"])
        assert set(mine) == {
            "id",
            "name",
            "prefix",
            "role",
            "user_id",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        }
        assert mine["last_used_at"] is not None
        # The integration token may not manage tokens.
        assert client.get("/api/v1/tokens/", headers=headers).status_code == 403
        assert client.delete(f"/api/v1/tokens/{token['id']}", headers=a.headers).status_code == 204
        assert client.get("/api/v1/practices/", headers=headers).status_code == 401
        assert client.delete(f"/api/v1/tokens/{token['id']}", headers=a.headers).status_code == 204
        assert client.delete("/api/v1/tokens/no-such-token", headers=a.headers).status_code == 404
    with hub.sessions() as session:
        stored = session.get(ApiToken, token["id"])
        assert stored is not None
        assert stored.revoked_at is not None
        assert raw not in {t.token_hash for t in session.scalars(select(ApiToken))}
    assert [e.resource_ids for e in _audit(hub, "token.created")] == [[token["id"]]]
    assert len(_audit(hub, "token.revoked")) == 2
    denied = [(e.status_code, e.detail["reason"], e.actor) for e in _audit(hub, "auth.denied")]
    assert denied == [(403, "role", f"token:{token['id']}"), (401, "revoked", f"token:{token['id']}")]


def test_refused_tokens_are_audited_and_throttled(hub: Hub) -> None:
    hub.settings = hub.settings.model_copy(update={"auth_failures_per_minute": 3})
    a = make_tenant(hub, "Org A")
    with api_client(hub) as client:
        assert client.get("/api/v1/practices/").status_code == 401
        for _ in range(2):
            assert client.get("/api/v1/practices/", headers={"Authorization": "Bearer vb_guess"}).status_code == 401
        throttled = client.get("/api/v1/practices/", headers=a.headers)
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) >= 1
    reasons = [(e.actor, e.detail["reason"], e.organization_id) for e in _audit(hub, "auth.denied")]
    assert reasons == [("anonymous", "missing", None), ("anonymous", "invalid", None), ("anonymous", "invalid", None)]
    for e in _audit(hub, "auth.denied"):
        assert "vb_guess" not in str(e.detail)


def test_token_for_another_organizations_user_is_refused(hub: Hub) -> None:
    a = make_tenant(hub, "Org A")
    b = make_tenant(hub, "Org B")
    with api_client(hub) as client:
        user_a = client.post("/api/v1/users/", json={"email": "x@a.example"}, headers=a.headers).json()
        resp = client.post("/api/v1/tokens/", json={"role": "admin", "user_id": user_a["id"]}, headers=b.headers)
        assert resp.status_code == 404
        assert client.get(f"/api/v1/users/{user_a['id']}", headers=b.headers).status_code == 404
    clinician = token_for(hub, a.org_id, Role.clinician)
    with api_client(hub) as client:
        assert (
            client.post(
                "/api/v1/users/", json={"email": "y@a.example"}, headers={"Authorization": f"Bearer {clinician}"}
            ).status_code
            == 403
        )
