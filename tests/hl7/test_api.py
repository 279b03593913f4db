"""``GET /api/v1/hl7/messages/``: roles, tenant isolation, filters, raw content only for admins."""

from __future__ import annotations

from sqlalchemy import select

from tests.hl7.support import Peer, listener, make_site, one, sample
from tests.support import api_client, token_for
from vitalbridge.audit.models import AuditEntry
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Role


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def feed(hub: Hub, messages: list[bytes]) -> None:
    with listener(hub) as srv, Peer(srv.port) as peer:
        for m in messages:
            peer.exchange(m)


def test_messages_are_listed_per_organization_with_filters(hub: Hub) -> None:
    a = make_site(hub, "Org A")
    b = make_site(hub, "Org B", facility="EASTCLINIC", code="P2")
    east = sample("adt_v2.3.hl7")[0].replace(b"|NORTHCLINIC|", b"|EASTCLINIC|")
    feed(
        hub,
        [*sample("adt_v2.4.hl7")[:2], one("malformed/missing_pid3.hl7"), east, one("malformed/unknown_facility.hl7")],
    )
    admin_a, integ_a, clin_a = (token_for(hub, a.org_id, r) for r in (Role.admin, Role.integration, Role.clinician))
    admin_b = token_for(hub, b.org_id, Role.admin)
    with api_client(hub) as client:
        listed = client.get("/api/v1/hl7/messages/", headers=bearer(integ_a))
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert body["count"] == 3
        assert [m["control_id"] for m in body["messages"]] == ["M-0001", "N24-0002", "N24-0001"]  # newest first
        assert all(m["raw"] is None for m in body["messages"])
        failed = client.get("/api/v1/hl7/messages/?status=error", headers=bearer(integ_a)).json()
        assert [(m["control_id"], m["error"], m["error_location"]) for m in failed["messages"]] == [
            ("M-0001", "PID-3 patient identifier list is required", "PID^1^3")
        ]
        assert client.get("/api/v1/hl7/messages/?practice=P1&limit=1", headers=bearer(admin_a)).json()["count"] == 1
        page = client.get("/api/v1/hl7/messages/?limit=2", headers=bearer(admin_a)).json()
        older = client.get(
            "/api/v1/hl7/messages/", params={"before": page["next_before"]}, headers=bearer(admin_a)
        ).json()
        assert [m["control_id"] for m in page["messages"] + older["messages"]] == ["M-0001", "N24-0002", "N24-0001"]
        # The other tenant sees only its own message; the unrouted one belongs to nobody.
        theirs = client.get("/api/v1/hl7/messages/", headers=bearer(admin_b)).json()
        assert [m["control_id"] for m in theirs["messages"]] == ["N23-0001"]
        mine_id = body["messages"][0]["id"]
        assert client.get(f"/api/v1/hl7/messages/{mine_id}", headers=bearer(admin_b)).status_code == 404
        assert client.get(f"/api/v1/hl7/messages/{mine_id}", headers=bearer(integ_a)).json()["status"] == "error"
        assert client.get("/api/v1/hl7/messages/?practice=P2", headers=bearer(admin_a)).status_code == 404
        # Clinicians have no business in interface logs.
        assert client.get("/api/v1/hl7/messages/", headers=bearer(clin_a)).status_code == 403
        assert client.get("/api/v1/hl7/messages/").status_code == 401
        assert client.get("/api/v1/hl7/messages/?status=bogus", headers=bearer(admin_a)).status_code == 422


def test_raw_content_only_for_admins_and_audited(hub: Hub) -> None:
    a = make_site(hub)
    feed(hub, [one("adt_a04_8859-1.hl7")])
    admin, integ = token_for(hub, a.org_id, Role.admin), token_for(hub, a.org_id, Role.integration)
    with api_client(hub) as client:
        refused = client.get("/api/v1/hl7/messages/?include_raw=true", headers=bearer(integ))
        assert refused.status_code == 403
        assert "Muñoz" not in refused.text
        got = client.get("/api/v1/hl7/messages/?include_raw=true", headers=bearer(admin)).json()
        (message,) = got["messages"]
        assert "PID|1||260001^^^NORTHCLINIC^MR||Muñoz^Renée^José" in message["raw"]  # decoded by its charset
        single = client.get(f"/api/v1/hl7/messages/{message['id']}?include_raw=true", headers=bearer(admin)).json()
        assert single["raw"] == message["raw"]
        without = client.get(f"/api/v1/hl7/messages/{message['id']}", headers=bearer(admin)).json()
        assert without["raw"] is None
    with hub.sessions() as session:
        views = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "hl7.raw_viewed")))
    assert len(views) == 2
    assert views[0].resource_ids == [message["id"]]
    assert views[0].organization_id == a.org_id
    assert views[0].actor.startswith("token:")
