"""GET /api/v1/audit/: admins only, own organization only, filters and paging."""

from __future__ import annotations

from tests.support import api_client, make_tenant, token_for
from vitalbridge.audit import Outcome, record
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Role


def test_admin_sees_only_own_entries_with_filters_and_paging(hub: Hub) -> None:
    a = make_tenant(hub, "Org A")
    b = make_tenant(hub, "Org B")
    with hub.sessions() as session, session.begin():
        for i in range(5):
            record(
                session,
                action="ehr.call",
                outcome=Outcome.success if i != 2 else Outcome.failure,
                actor="service:worker",
                organization_id=a.org_id,
                resource_type="Observation",
                correlation_id=f"corr-{i:08d}",
            )
        record(session, action="ehr.call", outcome="success", actor="service:worker", organization_id=b.org_id)
        record(session, action="hub.started", outcome="success", actor="service:hub")
    with api_client(hub) as client:
        page = client.get("/api/v1/audit/", params={"action": "ehr.call", "limit": 2}, headers=a.headers)
        assert page.status_code == 200, page.text
        body = page.json()
        assert [e["seq"] for e in body["entries"]] == [5, 4]
        assert body["next_cursor"] == 4
        rest = client.get(
            "/api/v1/audit/", params={"action": "ehr.call", "cursor": 4, "limit": 10}, headers=a.headers
        ).json()
        assert [e["seq"] for e in rest["entries"]] == [3, 2, 1]
        assert rest["next_cursor"] is None
        failed = client.get("/api/v1/audit/", params={"outcome": "failure"}, headers=a.headers).json()
        assert [e["correlation_id"] for e in failed["entries"]] == ["corr-00000002"]
        by_corr = client.get("/api/v1/audit/", params={"correlation_id": "corr-00000004"}, headers=a.headers).json()
        assert [e["seq"] for e in by_corr["entries"]] == [5]
        window = client.get(
            "/api/v1/audit/", params={"since": "2000-01-01T00:00:00", "until": "2000-01-02"}, headers=a.headers
        ).json()
        assert window["entries"] == []
        # B sees its one entry (plus its own reads), never A's nor hub-level ones.
        seen_b = client.get("/api/v1/audit/", params={"action": "ehr.call"}, headers=b.headers).json()["entries"]
        assert [e["organization_id"] for e in seen_b] == [b.org_id]
        clinician = token_for(hub, a.org_id, Role.clinician)
        denied = client.get("/api/v1/audit/", headers={"Authorization": f"Bearer {clinician}"})
        assert denied.status_code == 403
        bad = client.get("/api/v1/audit/", params={"limit": 0}, headers=a.headers)
        assert bad.status_code == 422
        reads = client.get("/api/v1/audit/", params={"action": "audit.read"}, headers=a.headers).json()["entries"]
        assert len(reads) >= 5
        denials = client.get("/api/v1/audit/", params={"action": "auth.denied"}, headers=a.headers).json()["entries"]
        assert [(d["status_code"], d["detail"]["reason"], d["detail"]["route"]) for d in denials] == [
            (403, "role", "/api/v1/audit/")
        ]
