"""Device registry (SPEC §5): unknown devices are kept and held; assignment releases them to the patient."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.readings_support import add_patient, assign, bp, count, make_world, recent
from tests.support import api_client
from vitalbridge.audit.models import AuditEntry
from vitalbridge.db.base import utcnow
from vitalbridge.delivery.models import BlockedReason, OutboxEntry, OutboxStatus
from vitalbridge.delivery.outbox import release_for_patient
from vitalbridge.devices.models import Reading
from vitalbridge.patients.models import Patient, PatientStatus
from vitalbridge.runtime import Hub
from vitalbridge.triage.models import Alert

DEVICE = "356938035643809"


def outbox(hub: Hub) -> list[OutboxEntry]:
    with hub.sessions() as session:
        return list(session.scalars(select(OutboxEntry).order_by(OutboxEntry.created_at, OutboxEntry.id)))


def test_unassigned_device_reading_is_stored_flagged_and_held_then_released_on_assignment(hub: Hub) -> None:
    world = make_world(hub)
    patient = add_patient(hub, world, ehr_id="ehr-42")
    with api_client(hub) as client:
        resp = world.post(client, bp("held-1", systolic=190))  # critical, but nobody to alert about yet
        assert resp.status_code == 202
        assert resp.json()["delivery"] == "blocked"
        (reading,) = client.get("/api/v1/readings/", params={"unassigned": True}, headers=world.clinician).json()
        assert reading["unassigned"] is True
        assert reading["patient_id"] is None
        assert reading["triaged"] is False
        assert {m["delivery"]["status"] for m in reading["measurements"]} == {"blocked"}
        assert {m["delivery"]["blocked_reason"] for m in reading["measurements"]} == {"device_unassigned"}
        devices = client.get("/api/v1/devices/", params={"unassigned": True}, headers=world.clinician).json()
        assert [d["device_id"] for d in devices] == [DEVICE]  # the unknown device shows up for assignment
        assert devices[0]["model"] == "UA-651BLE"
        rows = outbox(hub)
        assert all("subject" not in r.resource and r.next_attempt_at is None for r in rows)
        assert count(hub, Alert) == 0

        assigned = assign(client, world, DEVICE, patient)
        assert assigned.status_code == 200, assigned.text
        assert assigned.json()["released_readings"] == 1

        (after,) = client.get("/api/v1/readings/", params={"patient": patient}, headers=world.clinician).json()
        assert after["unassigned"] is False
        assert after["triaged"] is True
    rows = outbox(hub)
    assert {r.status for r in rows} == {OutboxStatus.pending}
    assert all(r.resource["subject"] == {"reference": "Patient/ehr-42"} for r in rows)
    assert all(r.practice_id == world.practice_id and r.patient_id == patient for r in rows)
    with hub.sessions() as session:
        alert = session.scalars(select(Alert)).one()
        assert (alert.rule_code, alert.patient_id) == ("bp_systolic_high", patient)
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "device.assigned")).one()
        assert audit.detail["released_readings"] == 1
        assert audit.detail["patient_id"] == patient


def test_patient_without_ehr_id_holds_deliveries_until_linked(hub: Hub) -> None:
    world = make_world(hub)
    patient = add_patient(hub, world, ehr_id=None)
    with api_client(hub) as client:
        assert assign(client, world, DEVICE, patient).status_code == 200
        assert world.post(client, bp("unlinked-1")).json()["delivery"] == "blocked"
    rows = outbox(hub)
    assert {(r.status, r.blocked_reason) for r in rows} == {(OutboxStatus.blocked, BlockedReason.patient_unlinked)}
    assert all(r.practice_id == world.practice_id for r in rows)
    # The patient-import feature links the patient, then calls release_for_patient.
    with hub.sessions() as session, session.begin():
        session.get(Patient, patient).ehr_id = "ehr-linked"
        assert release_for_patient(session, patient, actor="service:test", now=utcnow()) == 2
    rows = outbox(hub)
    assert {r.status for r in rows} == {OutboxStatus.pending}
    assert all(r.resource["subject"] == {"reference": "Patient/ehr-linked"} for r in rows)
    # An EHR merge later re-points rows that are still pending.
    with hub.sessions() as session, session.begin():
        session.get(Patient, patient).ehr_id = "ehr-merged"
        assert release_for_patient(session, patient, actor="service:test", now=utcnow()) == 2
    assert all(r.resource["subject"] == {"reference": "Patient/ehr-merged"} for r in outbox(hub))
    assert count(hub, AuditEntry, AuditEntry.action == "outbox.released") == 2


def test_reassignment_attributes_late_readings_by_when_they_were_measured(hub: Hub) -> None:
    world = make_world(hub)
    alice = add_patient(hub, world, ehr_id="ehr-alice")
    bob = add_patient(hub, world, ehr_id="ehr-bob")
    measured_while_alice = recent(60)
    with api_client(hub) as client:
        assert assign(client, world, DEVICE, alice).status_code == 200
        moved = assign(client, world, DEVICE, bob)
        assert moved.json()["previous_patient_id"] == alice
        # Sent late (the gateway was offline) but measured while Alice had the cuff.
        assert world.post(client, bp("late-1", at=measured_while_alice)).status_code == 202
        while_bob = datetime.now(UTC)
        assert world.post(client, bp("now-1", at=while_bob)).status_code == 202
        assert assign(client, world, DEVICE, None).json()["patient_id"] is None
        # Measured while Bob had it, arriving after the device came back.
        assert world.post(client, bp("late-2", at=while_bob)).status_code == 202
        assert world.post(client, bp("after-return", at=datetime.now(UTC))).status_code == 202  # held
    with hub.sessions() as session:
        owner = dict(session.execute(select(Reading.gateway_reading_id, Reading.patient_id)).all())
    assert owner == {"late-1": alice, "now-1": bob, "late-2": bob, "after-return": None}
    subjects = {r.resource.get("subject", {}).get("reference") for r in outbox(hub)}
    assert subjects == {"Patient/ehr-alice", "Patient/ehr-bob", None}
    assert (
        count(hub, AuditEntry, AuditEntry.action.in_(["device.assigned", "device.reassigned", "device.unassigned"]))
        == 3
    )


def test_readings_of_a_merged_patient_go_to_the_surviving_record(hub: Hub) -> None:
    world = make_world(hub)
    survivor = add_patient(hub, world, ehr_id="ehr-survivor")
    old = add_patient(hub, world, ehr_id="ehr-old")
    with api_client(hub) as client:
        assert assign(client, world, DEVICE, old).status_code == 200
        with hub.sessions() as session, session.begin():
            p = session.get(Patient, old)
            assert p is not None
            p.status, p.merged_into_id = PatientStatus.merged, survivor
        assert world.post(client, bp("m-1")).status_code == 202
    with hub.sessions() as session:
        assert session.scalars(select(Reading.patient_id)).one() == survivor
    assert {r.resource["subject"]["reference"] for r in outbox(hub)} == {"Patient/ehr-survivor"}


def test_device_api_validation_and_roles(hub: Hub) -> None:
    world = make_world(hub)
    with api_client(hub) as client:
        bad = client.post(
            "/api/v1/devices/", json={"device_id": "has space", "patient_id": None}, headers=world.clinician
        )
        assert bad.status_code == 422
        assert (
            client.post(
                "/api/v1/devices/", json={"device_id": "X1", "patient_id": "nope"}, headers=world.clinician
            ).status_code
            == 404
        )
        assert client.get("/api/v1/devices/", headers=world.integration).status_code == 200
        assert client.get("/api/v1/devices/").status_code == 401
        assert client.get("/api/v1/devices/X1", headers=world.clinician).status_code == 404


def test_tenants_cannot_see_or_touch_each_others_devices_readings_and_quarantine(hub: Hub) -> None:
    a = make_world(hub, "Org A")
    b = make_world(hub, "Org B")
    patient_a = add_patient(hub, a)
    with api_client(hub) as client:
        assert assign(client, a, DEVICE, patient_a).status_code == 200
        reading_id = a.post(client, bp("a-1")).json()["reading_id"]
        bad = bp("a-bad", systolic=999)
        assert a.post(client, bad).status_code == 422
        q_id = client.get("/api/v1/quarantine/", headers=a.integration).json()[0]["id"]
        device_id = client.get("/api/v1/devices/", headers=a.clinician).json()[0]["id"]

        for path in (f"/api/v1/devices/{device_id}", f"/api/v1/devices/{DEVICE}", f"/api/v1/readings/{reading_id}"):
            assert client.get(path, headers=b.clinician).status_code == 404, path
            assert client.get(path, headers=a.clinician).status_code == 200, path
        assert client.get("/api/v1/readings/", params={"patient": patient_a}, headers=b.clinician).status_code == 404
        assert client.get("/api/v1/readings/", params={"device": DEVICE}, headers=b.clinician).status_code == 404
        assert client.get("/api/v1/readings/", headers=b.clinician).json() == []
        assert client.get("/api/v1/devices/", headers=b.clinician).json() == []
        assert client.get(f"/api/v1/quarantine/{q_id}", headers=b.integration).status_code == 404
        assert client.post(f"/api/v1/quarantine/{q_id}/dismiss", json={}, headers=b.integration).status_code == 404
        assert client.get("/api/v1/quarantine/", headers=b.integration).json() == []
        # Org B cannot claim org A's patient for its own device, nor learn that the patient exists.
        assert assign(client, b, "B-DEV", patient_a).status_code == 404
        # Org B's gateway secret does not open org A's gateway.
        assert b.post(client, bp("b-1"), secret=b.secret).status_code == 202
        from tests.readings_support import World

        spoof = World(**{**b.__dict__, "gateway_id": a.gateway_id})
        assert spoof.post(client, bp("b-2")).status_code == 401
        # The same device serial in org B is org B's own device, not org A's.
        with hub.sessions() as session:
            owners = {r.organization_id for r in session.scalars(select(Reading))}
        assert owners == {a.org_id, b.org_id}
        assert client.get("/api/v1/devices/", headers=b.clinician).json()[0]["patient_id"] is None


def test_an_unassigned_device_can_be_assigned_after_a_long_gap_and_keeps_history(hub: Hub) -> None:
    world = make_world(hub)
    patient = add_patient(hub, world)
    with api_client(hub) as client:
        for i in range(3):
            assert world.post(client, bp(f"gap-{i}", at=recent(10 + i) - timedelta(days=i))).status_code == 202
        assert assign(client, world, DEVICE, patient).json()["released_readings"] == 3
        # Assigning the same patient again is a no-op, not a second release.
        again = assign(client, world, DEVICE, patient).json()
        assert again["released_readings"] == 0
    assert count(hub, Reading, Reading.patient_id == patient) == 3
