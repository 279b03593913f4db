"""EHR merges (SPEC §4 "Merged patients"): re-link the patient, and pending deliveries follow.

Readings arrive over the real webhook, so their Observations sit in the outbox as ingest writes
them; the sandbox then merges the patient's chart (its control endpoint) in each of its modes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.patients.support import sandbox_patients
from tests.readings_support import bp
from tests.sandbox.support import PRACTICE
from tests.smart.conftest import SmartEnv
from tests.support import token_for
from vitalbridge.audit import Actor
from vitalbridge.audit.models import AuditEntry
from vitalbridge.db.base import utcnow
from vitalbridge.delivery.models import OutboxEntry, OutboxStatus
from vitalbridge.devices import gateway_service
from vitalbridge.devices.gateways import GatewayKind
from vitalbridge.devices.simulator import post_webhook
from vitalbridge.errors import EhrInvalid
from vitalbridge.patients.bulk.jobs import SyncOptions, create_job
from vitalbridge.patients.bulk.policy import PollPolicy
from vitalbridge.patients.bulk.sync import run
from vitalbridge.patients.models import Patient, PatientEhrAlias, PatientStatus
from vitalbridge.patients.outbox_follow import PATIENT_GONE_ERROR, PATIENT_NOT_FOUND
from vitalbridge.patients.relink import relink_for_delivery, relink_patient
from vitalbridge.tenancy.models import Practice, Role

DEVICE = "356938035643809"
IMPORT = "/api/v1/ecw/patients/import/"


class Clinic:
    """One imported patient with a cuff whose readings are waiting in the outbox."""

    def __init__(self, env: SmartEnv, ehr_id: str) -> None:
        self.env = env
        self.headers = {"Authorization": f"Bearer {token_for(env.hub, env.tenant.org_id, Role.clinician)}"}
        resp = env.api.post(IMPORT, json={"patient_ids": [ehr_id]}, headers=self.headers)
        assert resp.status_code == 200, resp.text
        self.patient_id: str = resp.json()["patients"][0]["id"]
        with env.hub.sessions() as session, session.begin():
            gw, secret = gateway_service.create_gateway(
                session, env.hub.sealer, organization_id=env.tenant.org_id, kind=GatewayKind.mioconnect, actor="t"
            )
            self.gateway_id, self.secret = gw.id, secret
        resp = env.api.post(
            "/api/v1/devices/", json={"device_id": DEVICE, "patient_id": self.patient_id}, headers=self.headers
        )
        assert resp.status_code == 200, resp.text

    def reading(self, reading_id: str) -> None:
        resp = post_webhook(self.env.api, self.env.hub_url, self.gateway_id, self.secret, bp(reading_id))
        assert resp.status_code in (200, 202), resp.text

    def rows(self) -> list[OutboxEntry]:
        with self.env.hub.sessions() as session:
            return list(session.scalars(select(OutboxEntry).order_by(OutboxEntry.created_at, OutboxEntry.id)))

    def patient(self) -> Patient:
        with self.env.hub.sessions() as session:
            row = session.get(Patient, self.patient_id)
            assert row is not None
            return row


def merge(env: SmartEnv, old: str, into: str, mode: str) -> None:
    resp = env.sandbox.http.post(
        "/_sandbox/patients/merge", json={"practice": PRACTICE, "from": old, "into": into, "mode": mode}
    )
    assert resp.status_code == 200, resp.text


def subjects(rows: list[OutboxEntry]) -> set[str]:
    return {r.resource["subject"]["reference"] for r in rows}


def actions(env: SmartEnv) -> list[str]:
    with env.hub.sessions() as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


@pytest.mark.parametrize("mode", ["link", "gone", "not_found"])
def test_merged_patient_is_relinked_and_pending_deliveries_follow(smart_env: SmartEnv, mode: str) -> None:
    old, into = (p["id"] for p in sandbox_patients(smart_env, 6)[3:5])
    clinic = Clinic(smart_env, old)
    clinic.reading("r-merge-1")
    rows = clinic.rows()
    assert len(rows) == 2  # blood pressure panel + heart rate
    assert {r.status for r in rows} == {OutboxStatus.pending}
    assert subjects(rows) == {f"Patient/{old}"}

    merge(smart_env, old, into, mode)
    # The EHR now refuses the old subject: what the outbox holds would never be accepted.
    with pytest.raises(EhrInvalid):
        smart_env.client().post(smart_env.practice, "Observation", json=rows[0].resource)

    assert relink_patient(smart_env.hub, smart_env.practice.id, clinic.patient_id) == into

    patient = clinic.patient()
    assert patient.ehr_id == into
    assert patient.status is PatientStatus.active
    with smart_env.hub.sessions() as session:
        alias = session.scalar(select(PatientEhrAlias).where(PatientEhrAlias.ehr_id == old))
        assert alias is not None
        assert alias.patient_id == clinic.patient_id
    rows = clinic.rows()
    assert {r.status for r in rows} == {OutboxStatus.pending}
    assert subjects(rows) == {f"Patient/{into}"}
    # …and the EHR accepts the re-pointed Observation.
    created = smart_env.client().post(
        smart_env.practice,
        "Observation",
        json=rows[0].resource,
        headers={"If-None-Exist": f"identifier={rows[0].idempotency_key}"},
    )
    assert created.status_code == 201
    assert "patient.relinked" in actions(smart_env)
    assert "outbox.relinked" in actions(smart_env)

    # New readings go straight to the new id, and a second re-link changes nothing.
    clinic.reading("r-merge-2")
    assert subjects(clinic.rows()) == {f"Patient/{into}"}
    assert relink_patient(smart_env.hub, smart_env.practice.id, clinic.patient_id) == into


def test_dead_letters_and_abandoned_claims_follow_but_live_claims_wait(smart_env: SmartEnv) -> None:
    old, into = (p["id"] for p in sandbox_patients(smart_env, 3)[1:3])
    clinic = Clinic(smart_env, old)
    for n in range(3):
        clinic.reading(f"r-dead-{n}")
    rows = clinic.rows()
    assert len(rows) == 6
    now = utcnow()
    with smart_env.hub.sessions() as session, session.begin():
        entries = [e for e in (session.get(OutboxEntry, r.id) for r in rows) if e is not None]
        dead_404, dead_reason, dead_value, expired, live, _pending = entries
        dead_404.status, dead_404.last_status_code, dead_404.last_error = OutboxStatus.dead, 404, "ehr_not_found"
        dead_reason.status, dead_reason.last_status_code = OutboxStatus.dead, 422
        dead_reason.last_error = f"{PATIENT_NOT_FOUND}: subject was merged"
        # Refused for a bad value, not for the subject: re-linking must not revive it.
        dead_value.status, dead_value.last_status_code, dead_value.last_error = OutboxStatus.dead, 422, "value-invalid"
        expired.status, expired.lease_owner, expired.lease_expires_at = (
            OutboxStatus.in_flight,
            "w1",
            now - timedelta(seconds=1),
        )
        live.status, live.lease_owner, live.lease_expires_at = OutboxStatus.in_flight, "w2", now + timedelta(minutes=5)
    ids = [r.id for r in rows]

    merge(smart_env, old, into, "link")
    assert relink_patient(smart_env.hub, smart_env.practice.id, clinic.patient_id) == into

    by_id = {r.id: r for r in clinic.rows()}
    follow = [by_id[i] for i in (ids[0], ids[1], ids[3], ids[5])]
    assert {r.status for r in follow} == {OutboxStatus.pending}
    assert subjects(follow) == {f"Patient/{into}"}
    assert all(r.lease_owner is None and r.last_error is None for r in follow)
    assert by_id[ids[2]].status is OutboxStatus.dead
    assert subjects([by_id[ids[2]]]) == {f"Patient/{old}"}
    assert by_id[ids[4]].status is OutboxStatus.in_flight  # a worker holds it: left alone
    assert by_id[ids[4]].lease_owner == "w2"


def test_delivery_hook_brings_a_dead_letter_back_with_the_new_subject(smart_env: SmartEnv) -> None:
    old, into = (p["id"] for p in sandbox_patients(smart_env, 9)[7:9])
    clinic = Clinic(smart_env, old)
    clinic.reading("r-hook-1")
    merge(smart_env, old, into, "link")
    row = clinic.rows()[0]
    # What the delivery worker does on a 422 naming the subject: dead-letter, then call the hook.
    with smart_env.hub.sessions() as session, session.begin():
        entry = session.get(OutboxEntry, row.id)
        assert entry is not None
        entry.status, entry.last_status_code = OutboxStatus.dead, 422
        entry.last_error = f"{PATIENT_NOT_FOUND}: Patient/{old} was merged"
    assert relink_for_delivery(smart_env.hub, row.id) == into
    with smart_env.hub.sessions() as session:
        entry = session.get(OutboxEntry, row.id)
        assert entry is not None
        assert entry.status is OutboxStatus.pending
        assert entry.resource["subject"]["reference"] == f"Patient/{into}"


def test_really_gone_patient_is_inactive_and_its_deliveries_dead_with_a_reason(smart_env: SmartEnv) -> None:
    real = sandbox_patients(smart_env, 1)[0]["id"]
    clinic = Clinic(smart_env, real)
    clinic.reading("r-gone-1")
    # The EHR id and MRN now point at nothing the EHR knows (a chart deleted at the EHR).
    with smart_env.hub.sessions() as session, session.begin():
        patient = session.get(Patient, clinic.patient_id)
        assert patient is not None
        patient.ehr_id, patient.mrn, patient.identifiers = "ffff00000001", "MRN-9999999", []
        for entry in session.scalars(select(OutboxEntry)):
            entry.resource = {**entry.resource, "subject": {"reference": "Patient/ffff00000001"}}

    assert relink_patient(smart_env.hub, smart_env.practice.id, clinic.patient_id) is None

    patient = clinic.patient()
    assert patient.status is PatientStatus.inactive
    assert patient.status_reason == "ehr_gone"
    rows = clinic.rows()
    assert {r.status for r in rows} == {OutboxStatus.dead}
    assert {r.last_error for r in rows} == {PATIENT_GONE_ERROR}
    assert "patient.ehr_gone" in actions(smart_env)
    # Shown to clinicians as such.
    got = smart_env.api.get(f"/api/v1/patients/{clinic.patient_id}", headers=clinic.headers).json()
    assert (got["status"], got["status_reason"]) == ("inactive", "ehr_gone")


def test_import_of_a_merged_away_id_relinks_and_imports_the_survivor(smart_env: SmartEnv) -> None:
    old, into = (p["id"] for p in sandbox_patients(smart_env, 12)[10:12])
    clinic = Clinic(smart_env, old)
    clinic.reading("r-imp-1")
    merge(smart_env, old, into, "link")
    resp = smart_env.api.post(IMPORT, json={"patient_ids": [old]}, headers=clinic.headers)
    assert resp.status_code == 200, resp.text
    item = resp.json()["patients"][0]
    assert item == {"id": clinic.patient_id, "ecw_id": into, "name": item["name"], "status": "relinked"}
    assert clinic.patient().ehr_id == into
    assert subjects(clinic.rows()) == {f"Patient/{into}"}


def test_bulk_sync_relinks_a_merged_patient_instead_of_duplicating_it(smart_env: SmartEnv) -> None:
    old, into = (p["id"] for p in sandbox_patients(smart_env, 6)[3:5])
    clinic = Clinic(smart_env, old)
    clinic.reading("r-bulk-1")
    merge(smart_env, old, into, "link")
    with smart_env.hub.sessions() as session:
        practice = session.get(Practice, smart_env.practice.id)
        assert practice is not None
    options = SyncOptions(policy=PollPolicy(min_poll_interval_s=0.05))
    job_id = create_job(smart_env.hub, practice, options, actor=Actor.service("test"))
    run(smart_env.hub, job_id, options, actor=Actor.service("test"))
    with smart_env.hub.sessions() as session:
        patients = session.scalars(select(Patient)).all()
    # 120 synthetic patients, one merged away: 119 charts, each once; ours carries the survivor's id.
    assert len(patients) == 119
    assert len({p.ehr_id for p in patients}) == 119
    assert clinic.patient().ehr_id == into
    assert clinic.patient().status is PatientStatus.active
    assert subjects(clinic.rows()) == {f"Patient/{into}"}
