"""A delivery to a patient the EHR merged away follows the new id by itself (SPEC §4 merges, §7).

The sandbox merges the patient (old id answers with a ``replaced-by`` link, and Observation
create against it is refused at ``Observation.subject``); the worker dead-letters the row as
``patient_not_found``, the patients re-link follows ``replaced-by``, the row comes back pending
with the new subject, and the next attempt lands on the surviving patient.
"""

from __future__ import annotations

from tests.delivery.support import PRACTICE, hub_http, make_env, post_readings, sandbox
from vitalbridge.delivery.deliver import deliver
from vitalbridge.delivery.models import OutboxStatus
from vitalbridge.patients.models import Patient, PatientEhrAlias
from vitalbridge.runtime import Hub


def test_delivery_follows_a_merged_patient(hub: Hub) -> None:
    with sandbox() as sb:
        listed = sb.http.get("/_sandbox/patients", params={"practice": PRACTICE, "limit": 2}).json()
        patients = listed["patients"] if isinstance(listed, dict) else listed
        old_id, new_id = str(patients[0]["id"]), str(patients[1]["id"])
        env = make_env(hub, sb.url, ehr_patient_id=old_id)
        merged = sb.http.post(
            "/_sandbox/patients/merge", json={"practice": PRACTICE, "from": old_id, "into": new_id, "mode": "link"}
        )
        assert merged.status_code in (200, 201), merged.text
        with hub_http(hub) as url:
            post_readings(env, url, 1)  # BP with pulse: two Observations
        rows = env.rows()
        first = deliver(hub, rows[0].id)
        assert first.status != "delivered"  # refused at Observation.subject, then re-linked
        # The re-link re-pointed every undelivered row of the patient, the refused one included.
        for row in env.rows():
            assert row.status is OutboxStatus.pending, (row.status, row.last_error)
            assert row.resource["subject"]["reference"] == f"Patient/{new_id}"
        for row in rows:
            assert deliver(hub, row.id).status == "delivered"
        stored = sb.observations()
    assert {o["subject"]["reference"] for o in stored} == {f"Patient/{new_id}"}
    assert len(stored) == len(rows)
    with hub.sessions() as session:
        patient = session.get(Patient, env.patient_id)
        assert patient is not None
        assert patient.ehr_id == new_id
        aliases = session.query(PatientEhrAlias).filter_by(patient_id=patient.id).all()
        assert [a.ehr_id for a in aliases] == [old_id]
