"""EHR patient search and import against the sandbox over real HTTP (SPEC §4)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.patients.support import patient_count, sandbox_patients, stats
from tests.sandbox.support import PRACTICE
from tests.smart.conftest import SmartEnv
from tests.support import token_for
from vitalbridge.audit.models import AuditEntry
from vitalbridge.patients.models import Patient
from vitalbridge.tenancy.models import Role

SEARCH = "/api/v1/ecw/patients/search/"
IMPORT = "/api/v1/ecw/patients/import/"


def clinician(env: SmartEnv) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(env.hub, env.tenant.org_id, Role.clinician)}"}


def test_search_by_identifier_maps_the_fhir_patient(smart_env: SmartEnv) -> None:
    target = sandbox_patients(smart_env, 5)[3]
    resp = smart_env.api.get(SEARCH, params={"identifier": target["mrn"]}, headers=clinician(smart_env))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["count"] == 1
    hit = body["patients"][0]
    assert hit["ecw_id"] == target["id"]
    assert hit["first_name"] == target["given"]
    assert hit["last_name"] == target["family"]
    assert hit["date_of_birth"] == target["birthDate"]
    assert hit["mrn"] == target["mrn"]
    assert hit["gender"] in ("male", "female")
    assert hit["phone"].startswith("508-555-")
    assert hit["already_imported"] is False
    # system|value works too (the sandbox's MRN system).
    resp = smart_env.api.get(
        SEARCH,
        params={"identifier": f"urn:vitalbridge:sandbox:{PRACTICE}:mrn|{target['mrn']}"},
        headers=clinician(smart_env),
    )
    assert [p["ecw_id"] for p in resp.json()["patients"]] == [target["id"]]


def test_search_follows_next_links_up_to_count(smart_env: SmartEnv) -> None:
    before = stats(smart_env)["fhir_requests_by_practice"].get(PRACTICE, 0)
    # Every synthetic birth year starts with 19 or 20: name "a" matches many; pages hold 10.
    resp = smart_env.api.get(SEARCH, params={"name": "a", "_count": 25}, headers=clinician(smart_env))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["count"] == 25
    assert len({p["ecw_id"] for p in body["patients"]}) == 25
    assert all("a" in (p["first_name"] + " " + p["last_name"]).lower() for p in body["patients"])
    assert body["total"] is not None
    assert body["total"] > 25
    after = stats(smart_env)["fhir_requests_by_practice"][PRACTICE]
    assert after - before == 3  # pages of 10, 10 and 5 wanted: three requests, no more


def test_search_stops_at_the_last_page(smart_env: SmartEnv) -> None:
    target = sandbox_patients(smart_env, 1)[0]
    resp = smart_env.api.get(
        SEARCH,
        params={"name": target["family"], "birthdate": target["birthDate"], "_count": 100},
        headers=clinician(smart_env),
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert target["id"] in [p["ecw_id"] for p in body["patients"]]
    assert body["count"] == body["total"]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"name": "smith", "birthdate": "1985-13-01"}, ["query", "birthdate"]),
        ({"birthdate": "1985/01/01"}, ["query", "birthdate"]),
        ({"birthdate": "1985"}, ["query", "birthdate"]),
        ({"name": "smith", "_count": 0}, ["query", "_count"]),
        ({"name": "smith", "_count": 101}, ["query", "_count"]),
        ({"name": "   "}, ["query", "name"]),
        ({}, ["query"]),
    ],
)
def test_search_validates_its_inputs(smart_env: SmartEnv, params: dict[str, Any], loc: list[str]) -> None:
    before = stats(smart_env)["fhir_requests_by_practice"].get(PRACTICE, 0)
    resp = smart_env.api.get(SEARCH, params=params, headers=clinician(smart_env))
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "validation_failed"
    assert loc in [e["loc"] for e in body["errors"]]
    # Nothing went to the EHR.
    assert stats(smart_env)["fhir_requests_by_practice"].get(PRACTICE, 0) == before


def test_ehr_failure_is_a_clear_502_without_phi(smart_env: SmartEnv) -> None:
    smart_env.sandbox.http.put("/_sandbox/faults", json={"practice": PRACTICE, "error_rate": 1.0, "error_status": 503})
    resp = smart_env.api.get(SEARCH, params={"name": "Zebediah"}, headers=clinician(smart_env))
    assert resp.status_code == 502
    body = resp.json()
    assert body["error"] == "ehr_unavailable"
    assert "Zebediah" not in resp.text
    assert "Traceback" not in resp.text


def test_ehr_refusing_scope_is_reported(smart_env: SmartEnv) -> None:
    # A client registered without Patient access: the EHR refuses the search (403).
    smart_env.register_client(scopes=["system/Observation.write"])
    resp = smart_env.api.get(SEARCH, params={"name": "a"}, headers=clinician(smart_env))
    assert resp.status_code in (502, 400), resp.text
    assert resp.json()["error"] in ("ehr_forbidden", "ehr_auth_failed")


def test_import_twice_never_duplicates_and_refreshes_demographics(smart_env: SmartEnv) -> None:
    picks = sandbox_patients(smart_env, 3)
    ids = [p["id"] for p in picks]
    headers = clinician(smart_env)
    resp = smart_env.api.post(IMPORT, json={"patient_ids": ids}, headers=headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["imported"] == 3
    assert body["skipped"] == 0
    assert [p["status"] for p in body["patients"]] == ["created"] * 3
    assert body["patients"][0]["name"] == f"{picks[0]['given']} {picks[0]['family']}"
    assert patient_count(smart_env) == 3

    # Someone edited the local copy; the EHR stays the source of truth for demographics.
    with smart_env.hub.sessions() as session, session.begin():
        row = session.scalar(select(Patient).where(Patient.ehr_id == ids[0]))
        assert row is not None
        row.family_name = "Stale"
        first_id = row.id

    resp = smart_env.api.post(IMPORT, json={"patient_ids": ids}, headers=headers)
    body = resp.json()
    assert body["imported"] == 3
    assert [p["status"] for p in body["patients"]] == ["updated"] * 3
    assert body["patients"][0]["id"] == first_id
    assert patient_count(smart_env) == 3
    with smart_env.hub.sessions() as session:
        row = session.get(Patient, first_id)
        assert row is not None
        assert row.family_name == picks[0]["family"]
        assert row.mrn == picks[0]["mrn"]
        assert row.ehr_synced_at is not None

    # The search now says so.
    resp = smart_env.api.get(SEARCH, params={"identifier": picks[0]["mrn"]}, headers=headers)
    assert resp.json()["patients"][0]["already_imported"] is True


def test_import_assigns_provider_and_program(smart_env: SmartEnv) -> None:
    admin = smart_env.tenant.headers
    provider = smart_env.api.post(
        "/api/v1/providers/", json={"name": "Dr. Ada Park", "npi": "1234567893"}, headers=admin
    )
    assert provider.status_code == 201, provider.text
    program = smart_env.api.post("/api/v1/programs/", json={"code": "htn", "name": "Hypertension"}, headers=admin)
    assert program.status_code == 201, program.text
    target = sandbox_patients(smart_env, 1)[0]
    resp = smart_env.api.post(
        IMPORT,
        json={"patient_ids": [target["id"]], "assign_to_provider": provider.json()["id"], "program": "htn"},
        headers=clinician(smart_env),
    )
    assert resp.status_code == 200, resp.text
    patient_id = resp.json()["patients"][0]["id"]
    got = smart_env.api.get(f"/api/v1/patients/{patient_id}", headers=clinician(smart_env)).json()
    assert got["provider"] == {"id": provider.json()["id"], "name": "Dr. Ada Park"}
    assert got["program"]["id"] == program.json()["id"]
    assert got["ehr_id"] == target["id"]
    assert got["practice_code"] == PRACTICE

    bad = smart_env.api.post(
        IMPORT, json={"patient_ids": [target["id"]], "program": "nope"}, headers=clinician(smart_env)
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["body", "program"]


def test_import_unknown_and_malformed_ids(smart_env: SmartEnv) -> None:
    headers = clinician(smart_env)
    real = sandbox_patients(smart_env, 1)[0]["id"]
    resp = smart_env.api.post(IMPORT, json={"patient_ids": [real, "ffff00000000"]}, headers=headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["imported"] == 1
    assert body["skipped"] == 1
    assert body["patients"][1] == {"id": None, "ecw_id": "ffff00000000", "name": "", "status": "not_found"}
    resp = smart_env.api.post(IMPORT, json={"patient_ids": ["../Observation"]}, headers=headers)
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["loc"] == ["body", "patient_ids", 0]
    assert patient_count(smart_env) == 1


def test_search_and_import_are_audited_without_phi(smart_env: SmartEnv) -> None:
    target = sandbox_patients(smart_env, 1)[0]
    headers = clinician(smart_env)
    smart_env.api.get(SEARCH, params={"name": target["family"], "birthdate": target["birthDate"]}, headers=headers)
    smart_env.api.post(IMPORT, json={"patient_ids": [target["id"]]}, headers=headers)
    with smart_env.hub.sessions() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
    actions = [e.action for e in entries]
    assert "patients.searched" in actions
    assert "patients.imported" in actions
    assert "ehr.call" in actions
    searched = next(e for e in entries if e.action == "patients.searched")
    assert searched.detail["params"] == ["birthdate", "name"]
    text = " ".join(str(e.detail) + str(e.resource_ids) for e in entries)
    for phi in (target["family"], target["given"], target["birthDate"], target["mrn"]):
        assert phi not in text


def test_clinician_role_is_required(smart_env: SmartEnv) -> None:
    integration = {"Authorization": f"Bearer {token_for(smart_env.hub, smart_env.tenant.org_id, Role.integration)}"}
    assert smart_env.api.get(SEARCH, params={"name": "a"}, headers=integration).status_code == 403
    assert smart_env.api.post(IMPORT, json={"patient_ids": ["x"]}, headers=integration).status_code == 403
    assert smart_env.api.get(SEARCH, params={"name": "a"}).status_code == 401


def test_sync_api_runs_in_the_background_and_reports_progress(smart_env: SmartEnv) -> None:
    from vitalbridge.patients.bulk import background

    integration = {"Authorization": f"Bearer {token_for(smart_env.hub, smart_env.tenant.org_id, Role.integration)}"}
    assert smart_env.api.post("/api/v1/ecw/patients/sync/", json={}, headers=integration).status_code == 403
    resp = smart_env.api.post(
        "/api/v1/ecw/patients/sync/", json={"practice": PRACTICE}, headers=smart_env.tenant.headers
    )
    assert resp.status_code == 202, resp.text
    sync_id = resp.json()["id"]
    assert background.wait(smart_env.hub, sync_id, timeout=60)
    got = smart_env.api.get(f"/api/v1/ecw/patients/sync/{sync_id}", headers=integration)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["status"] == "completed"
    assert body["patients_created"] == 120
    assert [f["lines_done"] for f in body["files"]] == [120]
    assert patient_count(smart_env) == 120
    listed = smart_env.api.get("/api/v1/patients/", params={"limit": 5, "offset": 5}, headers=clinician(smart_env))
    assert listed.status_code == 200
    page = listed.json()
    assert page["total"] == 120
    assert len(page["patients"]) == 5
    first = page["patients"][0]
    found = smart_env.api.get("/api/v1/patients/", params={"q": first["mrn"]}, headers=clinician(smart_env)).json()
    assert [p["id"] for p in found["patients"]] == [first["id"]]
    assert smart_env.api.get("/api/v1/ecw/patients/sync/nope", headers=integration).status_code == 404
