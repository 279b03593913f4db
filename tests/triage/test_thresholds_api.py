"""Per-patient overrides beat program defaults (SPEC §6); rule documents are validated where they are written."""

from __future__ import annotations

from sqlalchemy import select

from tests.readings_support import add_patient, add_program, assign, bp, count, make_world
from tests.support import api_client
from vitalbridge.audit.models import AuditEntry
from vitalbridge.runtime import Hub
from vitalbridge.triage.models import Alert

PROGRAM_RULES = {"thresholds": [{"code": "bp_systolic_high", "levels": [{"severity": "high", "value": 150}]}]}
OVERRIDE = {"thresholds": [{"code": "bp_systolic_high", "levels": [{"severity": "critical", "value": 200}]}]}


def test_patient_override_beats_program_default(hub: Hub) -> None:
    world = make_world(hub)
    htn = add_program(hub, world, "htn", PROGRAM_RULES)
    with_override = add_patient(hub, world, ehr_id="o", program_id=htn)
    program_only = add_patient(hub, world, ehr_id="p", program_id=htn)
    with api_client(hub) as client:
        put = client.put(f"/api/v1/patients/{with_override}/thresholds", json=OVERRIDE, headers=world.clinician)
        assert put.status_code == 200, put.text
        shown = put.json()
        assert shown["overrides"] == OVERRIDE
        assert shown["program_rules"] == PROGRAM_RULES
        eff = {r["code"]: r for r in shown["effective"]["thresholds"]}
        assert eff["bp_systolic_high"]["levels"] == [{"severity": "critical", "value": 200.0, "inclusive": True}]
        program_view = client.get(f"/api/v1/patients/{program_only}/thresholds", headers=world.clinician).json()
        assert program_view["overrides"] == {}
        assert {r["code"]: r for r in program_view["effective"]["thresholds"]}["bp_systolic_high"]["levels"][0][
            "value"
        ] == 150

        for pid, cuff in ((with_override, "C-O"), (program_only, "C-P")):
            assign(client, world, cuff, pid)
            world.post(client, bp(f"{cuff}-1", systolic=165, device=cuff))
    with hub.sessions() as session:
        rows = session.execute(select(Alert.patient_id, Alert.severity)).all()
    # 165 ≥ 150 (program: high) for the program-only patient; under 200 for the overridden one.
    assert [(p, s.value) for p, s in rows] == [(program_only, "high")]
    assert count(hub, AuditEntry, AuditEntry.action == "thresholds.updated") == 1


def test_threshold_documents_are_validated_and_scoped(hub: Hub) -> None:
    world = make_world(hub)
    other = make_world(hub, "Org B")
    patient = add_patient(hub, world)
    url = f"/api/v1/patients/{patient}/thresholds"
    with api_client(hub) as client:
        bad = client.put(
            url,
            json={"thresholds": [{"code": "spo2_low", "levels": [{"severity": "urgent", "value": 90}]}]},
            headers=world.clinician,
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["loc"] == ["body", "thresholds", 0, "levels", 0, "severity"]
        assert client.put(url, json=[1, 2], headers=world.clinician).status_code == 422
        assert client.get(url, headers=other.clinician).status_code == 404
        assert client.put(url, json={}, headers=other.clinician).status_code == 404
        assert client.get(url, headers=world.integration).status_code == 403
        assert client.get("/api/v1/patients/nope/thresholds", headers=world.clinician).status_code == 404
        # Clearing the overrides.
        assert client.put(url, json=OVERRIDE, headers=world.clinician).status_code == 200
        assert client.put(url, json={}, headers=world.clinician).json()["overrides"] == {}


def test_program_rules_are_admin_writable_and_clinician_readable(hub: Hub) -> None:
    world = make_world(hub)
    program = add_program(hub, world, "chf")
    url = f"/api/v1/programs/{program}/rules"
    with api_client(hub) as client:
        assert client.put(url, json=PROGRAM_RULES, headers=world.clinician).status_code == 403
        ok = client.put("/api/v1/programs/chf/rules", json=PROGRAM_RULES, headers=world.admin)
        assert ok.status_code == 200, ok.text
        assert ok.json()["rules"] == PROGRAM_RULES
        assert client.get(url, headers=world.clinician).json()["rules"] == PROGRAM_RULES
        bad = client.put(url, json={"missed": {"days": -1}}, headers=world.admin)
        assert bad.json()["errors"][0]["loc"] == ["body", "missed", "days"]
        other = make_world(hub, "Org B")
        assert client.get(url, headers=other.clinician).status_code == 404
