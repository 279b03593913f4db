"""Alerts (SPEC §6): one per patient and rule, ack/resolve with history and audit, tenant-scoped."""

from __future__ import annotations

from sqlalchemy import select

from tests.readings_support import add_patient, assign, bp, count, make_world, spo2
from tests.support import api_client
from vitalbridge.audit.models import AuditEntry
from vitalbridge.runtime import Hub
from vitalbridge.triage import alerts
from vitalbridge.triage.models import Alert, AlertEvent

CUFF = "356938035643809"


def events(hub: Hub) -> list[tuple[str, str, str]]:
    with hub.sessions() as session:
        rows = session.scalars(select(AlertEvent).order_by(AlertEvent.seq))
        return [(e.kind.value, e.severity.value, e.to_status.value) for e in rows]


def test_a_breach_opens_one_alert_and_repeats_update_it(hub: Hub) -> None:
    world = make_world(hub)
    patient = add_patient(hub, world, with_provider_user=True)
    with api_client(hub) as client:
        assert assign(client, world, CUFF, patient).status_code == 200
        ids = [world.post(client, bp(f"hi-{i}", systolic=165)).json()["reading_id"] for i in range(3)]
        assert world.post(client, bp("ok-1", systolic=125)).status_code == 202  # in range: no change
        (alert,) = client.get("/api/v1/alerts/", headers=world.clinician).json()
        assert (alert["rule_code"], alert["severity"], alert["status"]) == ("bp_systolic_high", "high", "open")
        assert alert["occurrences"] == 3
        assert alert["reading_ids"] == ids
        assert (alert["first_reading_id"], alert["last_reading_id"]) == (ids[0], ids[-1])
        assert alert["detail"]["value"] == 165
        assert alert["assignee_user_id"] is not None  # the patient's provider, who gets the push

        escalated = world.post(client, bp("crit-1", systolic=185)).json()["reading_id"]
        (alert,) = client.get("/api/v1/alerts/", headers=world.clinician).json()
        assert (alert["severity"], alert["occurrences"], alert["last_reading_id"]) == ("critical", 4, escalated)
    assert events(hub) == [
        ("opened", "high", "open"),
        ("updated", "high", "open"),
        ("updated", "high", "open"),
        ("escalated", "critical", "open"),
    ]
    assert count(hub, AuditEntry, AuditEntry.action.in_(["alert.opened", "alert.escalated"])) == 2
    with hub.sessions() as session:
        feed = alerts.events_after(session, world.org_id, 0)
        assert [e.kind.value for e in feed] == ["opened", "updated", "updated", "escalated"]
        assert alerts.events_after(session, world.org_id, feed[1].seq)[0].seq == feed[2].seq
        assert {e.reading_id for e in feed} == {*ids, escalated}


def test_different_rules_and_patients_get_separate_alerts(hub: Hub) -> None:
    world = make_world(hub)
    a = add_patient(hub, world, ehr_id="a")
    b = add_patient(hub, world, ehr_id="b")
    with api_client(hub) as client:
        assert assign(client, world, CUFF, a).status_code == 200
        assert assign(client, world, "OX-1", b).status_code == 200
        world.post(client, bp("r1", systolic=185, diastolic=125, pulse=45))
        world.post(client, spo2("r2", 86, pulse=None, device="OX-1"))
        listed = client.get("/api/v1/alerts/", headers=world.clinician).json()
    assert sorted((x["patient_id"] == a, x["rule_code"], x["severity"]) for x in listed) == [
        (False, "spo2_low", "critical"),
        (True, "bp_diastolic_high", "critical"),
        (True, "bp_systolic_high", "critical"),
        (True, "heart_rate_low", "high"),
    ]
    assert [x["severity"] for x in listed] == ["critical", "critical", "critical", "high"]  # the triage queue order


def test_acknowledge_and_resolve_with_history_and_audit(hub: Hub) -> None:
    world = make_world(hub)
    patient = add_patient(hub, world)
    with api_client(hub) as client:
        assign(client, world, CUFF, patient)
        world.post(client, bp("r1", systolic=185))
        (alert,) = client.get("/api/v1/alerts/", headers=world.clinician).json()
        aid = alert["id"]
        ack = client.post(
            f"/api/v1/alerts/{aid}/acknowledge", json={"note": "calling patient"}, headers=world.clinician
        )
        assert ack.status_code == 200, ack.text
        assert ack.json()["status"] == "acknowledged"
        assert ack.json()["acknowledged_by"].startswith("token:")
        assert client.post(f"/api/v1/alerts/{aid}/acknowledge", json={}, headers=world.clinician).status_code == 409
        # A repeat breach while acknowledged folds in and keeps the status.
        world.post(client, bp("r2", systolic=186))
        assert client.get(f"/api/v1/alerts/{aid}", headers=world.clinician).json()["status"] == "acknowledged"
        resolved = client.post(f"/api/v1/alerts/{aid}/resolve", json={"note": "med adjusted"}, headers=world.clinician)
        assert resolved.status_code == 200
        body = resolved.json()
        assert body["status"] == "resolved"
        assert [(h["kind"], h["from_status"], h["to_status"]) for h in body["history"]] == [
            ("opened", None, "open"),
            ("acknowledged", "open", "acknowledged"),
            ("updated", "acknowledged", "acknowledged"),
            ("resolved", "acknowledged", "resolved"),
        ]
        assert [h["note"] for h in body["history"]][1::2] == ["calling patient", "med adjusted"]
        assert body["history"][0]["actor"] == "service:triage"
        assert client.post(f"/api/v1/alerts/{aid}/resolve", json={}, headers=world.clinician).status_code == 409
        assert client.get("/api/v1/alerts/", headers=world.clinician).json() == []
        done = client.get("/api/v1/alerts/", params={"status": "resolved"}, headers=world.clinician).json()
        assert [x["id"] for x in done] == [aid]
        # After resolution, a new breach is a new alert.
        world.post(client, bp("r3", systolic=190))
        (fresh,) = client.get("/api/v1/alerts/", headers=world.clinician).json()
        assert fresh["id"] != aid
        assert fresh["occurrences"] == 1
    with hub.sessions() as session:
        audit = session.scalars(
            select(AuditEntry).where(AuditEntry.resource_type == "Alert").order_by(AuditEntry.seq)
        ).all()
        assert [a.action for a in audit] == ["alert.opened", "alert.acknowledged", "alert.resolved", "alert.opened"]
        assert all("185" not in str(a.detail) for a in audit)  # codes and ids only


def test_assign_and_roles(hub: Hub) -> None:
    world = make_world(hub)
    patient = add_patient(hub, world)
    other = make_world(hub, "Org B")
    with api_client(hub) as client:
        assign(client, world, CUFF, patient)
        world.post(client, bp("r1", systolic=185))
        (alert,) = client.get("/api/v1/alerts/", headers=world.clinician).json()
        assert alert["assignee_user_id"] is None
        with hub.sessions() as session, session.begin():
            from vitalbridge.tenancy.models import Role, User

            user = User(organization_id=world.org_id, email="nurse@example.org", role=Role.clinician)
            foreign = User(organization_id=other.org_id, email="other@example.org", role=Role.clinician)
            session.add_all([user, foreign])
            session.flush()
            user_id, foreign_id = user.id, foreign.id
        ok = client.post(f"/api/v1/alerts/{alert['id']}/assign", json={"user_id": user_id}, headers=world.clinician)
        assert ok.json()["assignee_user_id"] == user_id
        assert ok.json()["history"][-1]["kind"] == "assigned"
        assert (
            client.post(
                f"/api/v1/alerts/{alert['id']}/assign", json={"user_id": foreign_id}, headers=world.clinician
            ).status_code
            == 404
        )
        mine = client.get("/api/v1/alerts/", params={"assignee": user_id}, headers=world.clinician).json()
        assert [x["id"] for x in mine] == [alert["id"]]
        assert client.get("/api/v1/alerts/", headers=world.integration).status_code == 403
        assert client.get("/api/v1/alerts/", headers=world.admin).status_code == 200


def test_other_tenants_alerts_look_absent(hub: Hub) -> None:
    a = make_world(hub, "Org A")
    b = make_world(hub, "Org B")
    patient = add_patient(hub, a)
    with api_client(hub) as client:
        assign(client, a, CUFF, patient)
        a.post(client, bp("r1", systolic=185))
        (alert,) = client.get("/api/v1/alerts/", headers=a.clinician).json()
        aid = alert["id"]
        assert client.get("/api/v1/alerts/", headers=b.clinician).json() == []
        assert client.get("/api/v1/alerts/", params={"patient": patient}, headers=b.clinician).json() == []
        assert client.get(f"/api/v1/alerts/{aid}", headers=b.clinician).status_code == 404
        for action in ("acknowledge", "resolve"):
            assert client.post(f"/api/v1/alerts/{aid}/{action}", json={}, headers=b.clinician).status_code == 404
        assert (
            client.post(f"/api/v1/alerts/{aid}/assign", json={"user_id": None}, headers=b.clinician).status_code == 404
        )
        assert client.get(f"/api/v1/alerts/{aid}", headers=a.clinician).json()["status"] == "open"
    with hub.sessions() as session:
        assert session.scalars(select(Alert.status)).one().value == "open"
