"""The patient flows at DEBUG logging leave no PHI in logs, exception texts, metrics or the audit
trail (SPEC §9; the leak harness of tests/leaks.py)."""

from __future__ import annotations

from typing import Any

from tests.leaks import LeakHarness
from tests.patients.support import sandbox_patients
from tests.sandbox.support import PRACTICE
from tests.smart.conftest import SmartEnv, SwitchableApp
from tests.support import token_for
from vitalbridge.app import create_app
from vitalbridge.audit import Actor
from vitalbridge.patients.bulk.jobs import SyncOptions, create_job
from vitalbridge.patients.bulk.policy import PollPolicy
from vitalbridge.patients.bulk.sync import run
from vitalbridge.patients.relink import relink_patient
from vitalbridge.tenancy.models import Practice, Role


def _distinctive(patients: list[dict[str, Any]]) -> dict[str, Any]:
    # Long names, so that a hit cannot be an accident of some other word containing them.
    return next(p for p in patients if len(p["family"]) >= 7 and len(p["given"]) >= 6)


def test_patient_flows_leak_no_phi(
    smart_env: SmartEnv, leak_harness: LeakHarness, hub_server: tuple[SwitchableApp, str]
) -> None:
    # Serve the harness's hub (DEBUG logging into the harness's file) where the env's hub was.
    hub = leak_harness.hub
    hub.settings.public_url = smart_env.hub_url
    hub.settings.ecw_rate_limit = 10_000.0
    hub_server[0].app = create_app(hub=hub, background=False)
    patients = sandbox_patients(smart_env, 60)
    target = _distinctive(patients)
    survivor = next(p for p in patients if p["id"] != target["id"])
    headers = {"Authorization": f"Bearer {token_for(smart_env.hub, smart_env.tenant.org_id, Role.clinician)}"}
    api = smart_env.api

    found = api.get(
        "/api/v1/ecw/patients/search/",
        params={"name": target["family"], "birthdate": target["birthDate"]},
        headers=headers,
    )
    assert found.status_code == 200
    assert (
        api.get("/api/v1/ecw/patients/search/", params={"identifier": target["mrn"]}, headers=headers).json()["count"]
        == 1
    )
    # A refused search echoes nothing either.
    assert (
        api.get(
            "/api/v1/ecw/patients/search/",
            params={"name": target["family"], "birthdate": "31/12/1999"},
            headers=headers,
        ).status_code
        == 422
    )
    imported = api.post("/api/v1/ecw/patients/import/", json={"patient_ids": [target["id"]]}, headers=headers)
    patient_id = imported.json()["patients"][0]["id"]
    assert api.get("/api/v1/patients/", params={"q": target["family"]}, headers=headers).json()["total"] == 1
    assert api.get(f"/api/v1/patients/{patient_id}", headers=headers).status_code == 200

    with smart_env.hub.sessions() as session:
        practice = session.get(Practice, smart_env.practice.id)
        assert practice is not None
    options = SyncOptions(policy=PollPolicy(min_poll_interval_s=0.05))
    job_id = create_job(hub, practice, options, actor=Actor.service("test"))
    run(hub, job_id, options, actor=Actor.service("test"))

    merge = {"practice": PRACTICE, "from": target["id"], "into": survivor["id"], "mode": "gone"}
    assert smart_env.sandbox.http.post("/_sandbox/patients/merge", json=merge).status_code == 200
    assert relink_patient(hub, smart_env.practice.id, patient_id) == survivor["id"]

    # The DEBUG pipeline saw these flows (so the search below searched something).
    routes = {line.get("route") for line in leak_harness.log_lines() if line.get("event") == "http.exchange"}
    assert {"/api/v1/ecw/patients/search/", "/api/v1/ecw/patients/import/", "/api/v1/patients/"} <= routes
    leak_harness.assert_no_leak([target["given"], target["family"], target["birthDate"], target["mrn"]])
