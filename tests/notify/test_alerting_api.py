"""``/api/v1/programs/{id}/alerting``: on-call lists and escalation delays (SPEC §6)."""

from __future__ import annotations

from sqlalchemy import select

from tests.notify.support import make_clinician, make_org, make_program
from tests.support import api_client
from vitalbridge.audit.models import AuditEntry
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Role


def test_admins_set_the_on_call_list_and_clinicians_read_it(hub: Hub) -> None:
    org, _ = make_org(hub)
    admin = make_clinician(hub, org, "admin@oncall.example", role=Role.admin)
    nurse = make_clinician(hub, org, "nurse@oncall.example")
    doctor = make_clinician(hub, org, "dr@oncall.example")
    program = make_program(hub, org, "HTN")
    url = f"/api/v1/programs/{program}/alerting"
    with api_client(hub) as client:
        empty = client.get(url, headers=nurse.headers).json()
        assert empty["on_call_user_ids"] == []
        assert empty["escalation_minutes"] is None
        assert empty["effective_escalation_minutes"] == hub.settings.escalation_minutes
        body = {"on_call_user_ids": [doctor.user_id, nurse.user_id, doctor.user_id], "escalation_minutes": 10}
        assert client.put(url, json=body, headers=nurse.headers).status_code == 403
        resp = client.put(url, json=body, headers=admin.headers)
        assert resp.status_code == 200, resp.text
        assert resp.json()["on_call_user_ids"] == [doctor.user_id, nurse.user_id]  # repeats dropped, order kept
        assert resp.json()["effective_escalation_minutes"] == 10
        # By program code too.
        assert client.get("/api/v1/programs/HTN/alerting", headers=nurse.headers).json() == resp.json()


def test_on_call_users_must_exist_in_the_organization(hub: Hub) -> None:
    org, _ = make_org(hub, "Org A")
    other, _ = make_org(hub, "Org B")
    admin = make_clinician(hub, org, "admin@oncall.example", role=Role.admin)
    stranger = make_clinician(hub, other, "stranger@b.example")
    program = make_program(hub, org, "CHF")
    with api_client(hub) as client:
        resp = client.put(
            f"/api/v1/programs/{program}/alerting",
            json={"on_call_user_ids": ["no-such-user", stranger.user_id]},
            headers=admin.headers,
        )
        assert resp.status_code == 422
        assert [e["loc"] for e in resp.json()["errors"]] == [
            ["body", "on_call_user_ids", 0],
            ["body", "on_call_user_ids", 1],
        ]
        bad = client.put(f"/api/v1/programs/{program}/alerting", json={"escalation_minutes": 0}, headers=admin.headers)
        assert bad.status_code == 422
        assert client.get("/api/v1/programs/nope/alerting", headers=admin.headers).status_code == 404
    with hub.sessions() as session:
        assert session.scalars(select(AuditEntry).where(AuditEntry.action == "program.alerting_updated")).all() == []
