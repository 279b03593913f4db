"""Bearer tokens on the FHIR API: 401 without a live token, 403 for the wrong practice or a
missing scope (SMART v1 and v2 scope syntax), and practices isolated from each other."""

from __future__ import annotations

import pytest

from tests.sandbox.conftest import SandboxFactory
from tests.sandbox.support import OTHER_PRACTICE, PRACTICE, Sandbox, vital


def test_no_token_is_401_with_operation_outcome(sandbox: Sandbox) -> None:
    resp = sandbox.get("Patient", None)
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/fhir+json")
    assert resp.headers["www-authenticate"].startswith("Bearer")
    outcome = resp.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "login"


def test_unknown_token_is_401_invalid_token(sandbox: Sandbox) -> None:
    resp = sandbox.get("Patient", "made-up-token")
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]


def test_expired_token_is_401(make_sandbox: SandboxFactory) -> None:
    sb = make_sandbox(token_lifetime_s=0)
    sb.register("c", client_secret="s")
    token = sb.basic_token("c", "s")
    assert sb.get("Patient", token).status_code == 401


def test_missing_scope_is_403_naming_the_scope(sandbox: Sandbox) -> None:
    sandbox.register("reader", client_secret="s", scopes=["system/Patient.read"])
    token = sandbox.basic_token("reader", "s")
    patient = sandbox.patient_ids(token, count=1)[0]
    resp = sandbox.post_observation(token, vital(patient))
    assert resp.status_code == 403
    diagnostics = resp.json()["issue"][0]["diagnostics"]
    assert "system/Observation.write" in diagnostics
    assert 'error="insufficient_scope"' in resp.headers["www-authenticate"]
    assert sandbox.stored() == []
    assert sandbox.get("Observation", token).status_code == 403


@pytest.mark.parametrize(
    ("scopes", "can_search_patients", "can_create_observation"),
    [
        (["system/Patient.rs", "system/Observation.c"], True, True),
        (["system/Patient.r"], False, False),
        (["system/*.read"], True, False),
        (["system/*.*"], True, True),
        (["system/Observation.cruds"], False, True),
    ],
)
def test_v1_and_v2_scope_forms(
    sandbox: Sandbox, scopes: list[str], can_search_patients: bool, can_create_observation: bool
) -> None:
    sandbox.register("full", client_secret="s", scopes=["system/*.*"])
    patient = sandbox.patient_ids(sandbox.basic_token("full", "s"), count=1)[0]
    sandbox.register("scoped", client_secret="s", scopes=scopes)
    token = sandbox.basic_token("scoped", "s")
    assert (sandbox.get("Patient", token).status_code == 200) is can_search_patients
    assert (sandbox.post_observation(token, vital(patient)).status_code == 201) is can_create_observation


def test_token_for_one_practice_is_refused_at_another(sandbox: Sandbox) -> None:
    sandbox.register("a-only", client_secret="s", practices=[PRACTICE])
    token = sandbox.basic_token("a-only", "s")
    resp = sandbox.get("Patient", token, OTHER_PRACTICE)
    assert resp.status_code == 403
    assert "not activated" in resp.json()["issue"][0]["diagnostics"]
    assert sandbox.post_observation(token, vital("x"), OTHER_PRACTICE).status_code == 403


def test_patient_ids_do_not_cross_practices(sandbox: Sandbox) -> None:
    sandbox.register("both", client_secret="s", practices=[PRACTICE, OTHER_PRACTICE])
    token = sandbox.basic_token("both", "s")
    a_patient = sandbox.patient_ids(token, PRACTICE, count=1)[0]
    assert sandbox.get(f"Patient/{a_patient}", token, PRACTICE).status_code == 200
    assert sandbox.get(f"Patient/{a_patient}", token, OTHER_PRACTICE).status_code == 404
    resp = sandbox.post_observation(token, vital(a_patient), OTHER_PRACTICE)
    assert resp.status_code == 422
    assert resp.json()["issue"][0]["expression"] == ["Observation.subject.reference"]
    assert set(sandbox.patient_ids(token, PRACTICE)).isdisjoint(sandbox.patient_ids(token, OTHER_PRACTICE))


def test_unknown_practice_is_404(sandbox: Sandbox) -> None:
    assert sandbox.http.get("/fhir/r4/NOPE/metadata").status_code == 404
    assert sandbox.http.get("/fhir/r4/NOPE/Patient").json()["resourceType"] == "OperationOutcome"


def test_unsupported_resources_and_methods_answer_operation_outcomes(sandbox: Sandbox) -> None:
    sandbox.register("c", client_secret="s")
    token = sandbox.basic_token("c", "s")
    missing = sandbox.get("Condition", token)
    assert missing.status_code == 404
    assert missing.json()["issue"][0]["code"] == "not-supported"
    wrong_method = sandbox.http.delete(f"/fhir/r4/{PRACTICE}/Observation", headers={"Authorization": f"Bearer {token}"})
    assert wrong_method.status_code == 405
    assert wrong_method.json()["resourceType"] == "OperationOutcome"
    assert sandbox.http.get("/nowhere").json() == {"detail": "Not Found"}
