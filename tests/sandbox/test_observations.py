"""Observation create (vital-signs validation, 422 naming the element), conditional create,
read and search (SPEC §7, §11)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.sandbox.support import PRACTICE, Sandbox, bp_panel, vital


@pytest.fixture
def token(sandbox: Sandbox) -> str:
    sandbox.register("writer", client_secret="s")
    return sandbox.basic_token("writer", "s")


@pytest.fixture
def patient(sandbox: Sandbox, token: str) -> str:
    return sandbox.patient_ids(token, count=1)[0]


def test_create_answers_201_with_location_and_stored_resource(sandbox: Sandbox, token: str, patient: str) -> None:
    resp = sandbox.post_observation(token, bp_panel(patient))
    assert resp.status_code == 201, resp.text
    assert resp.headers["content-type"].startswith("application/fhir+json")
    body = resp.json()
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"]
    assert resp.headers["location"] == f"{sandbox.base()}/Observation/{body['id']}/_history/1"
    assert resp.headers["etag"] == 'W/"1"'

    assert sandbox.get(f"Observation/{body['id']}", token).json() == body
    assert sandbox.get(f"Observation/{body['id']}/_history/1", token).json() == body
    assert sandbox.get(f"Observation/{body['id']}/_history/2", token).status_code == 404
    assert sandbox.stored() == [body]
    assert sandbox.stats()["observations_created"] == 1


@pytest.mark.parametrize(
    ("loinc", "unit"),
    [("8867-4", "/min"), ("59408-5", "%"), ("2708-6", "%"), ("29463-7", "kg"), ("29463-7", "[lb_av]"),
     ("2339-0", "mg/dL"), ("41653-7", "mg/dL"), ("8310-5", "Cel")],
)  # fmt: skip
def test_every_supported_vital_sign_is_accepted(
    sandbox: Sandbox, token: str, patient: str, loinc: str, unit: str
) -> None:
    assert sandbox.post_observation(token, vital(patient, loinc=loinc, unit=unit)).status_code == 201


def test_client_supplied_id_is_replaced(sandbox: Sandbox, token: str, patient: str) -> None:
    resource = vital(patient) | {"id": "mine"}
    assert sandbox.post_observation(token, resource).json()["id"] != "mine"


Mutation = Callable[[dict[str, Any]], None]


def _drop(path: str) -> Mutation:
    def mutate(resource: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = resource
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        del target[int(last) if last.isdigit() else last]

    return mutate


def _set(path: str, value: Any) -> Mutation:
    def mutate(resource: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = resource
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value

    return mutate


INVALID: dict[str, tuple[Callable[[str], dict[str, Any]], Mutation, str]] = {
    "missing category": (vital, _drop("category"), "Observation.category"),
    "category not vital-signs": (
        vital, _set("category", [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                              "code": "laboratory"}]}]), "Observation.category"),
    "wrong LOINC": (vital, _set("code", {"coding": [{"system": "http://loinc.org", "code": "1234-5"}]}),
                    "Observation.code.coding"),
    "code without LOINC": (vital, _set("code", {"coding": [{"system": "http://snomed.info/sct", "code": "364075005"}]}),
                           "Observation.code.coding"),
    "wrong UCUM unit": (vital, _set("valueQuantity.code", "beats/min"), "Observation.valueQuantity.code"),
    "kg for heart rate": (vital, _set("valueQuantity.code", "kg"), "Observation.valueQuantity.code"),
    "unit system not UCUM": (vital, _set("valueQuantity.system", "http://example.org/units"),
                             "Observation.valueQuantity.system"),
    "missing value": (vital, _drop("valueQuantity"), "Observation.valueQuantity"),
    "unknown subject": (vital, _set("subject", {"reference": "Patient/ffff00000000"}), "Observation.subject.reference"),
    "subject not a Patient": (vital, _set("subject", {"reference": "Group/all"}), "Observation.subject.reference"),
    "missing subject": (vital, _drop("subject"), "Observation.subject"),
    "missing effective": (vital, _drop("effectiveDateTime"), "Observation.effective[x]"),
    "missing status": (vital, _drop("status"), "Observation.status"),
    "bad status": (vital, _set("status", "done"), "Observation.status"),
    "value not a number": (vital, _set("valueQuantity.value", "high"), "Observation.valueQuantity.value"),
    "unknown element": (vital, _set("colour", "red"), "Observation.colour"),
    "bad dateTime": (vital, _set("effectiveDateTime", "yesterday"), "Observation.effectiveDateTime"),
    "BP without diastolic": (bp_panel, _drop("component.1"), "Observation.component"),
    "BP component in kPa": (bp_panel, _set("component.1.valueQuantity.code", "kPa"),
                            "Observation.component[1].valueQuantity.code"),
    "BP with a stray component": (bp_panel, _set("component.1.code", {"coding": [{"system": "http://loinc.org",
                                                                                  "code": "8867-4"}]}),
                                  "Observation.component[1].code"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_observation_is_422_naming_the_element(sandbox: Sandbox, token: str, patient: str, case: str) -> None:
    build, mutate, element = INVALID[case]
    resource = copy.deepcopy(build(patient))
    mutate(resource)
    resp = sandbox.post_observation(token, resource)
    assert resp.status_code == 422, resp.text
    outcome = resp.json()
    assert outcome["resourceType"] == "OperationOutcome"
    expressions = [e for issue in outcome["issue"] for e in issue.get("expression", [])]
    assert element in expressions, outcome
    assert all(issue["severity"] == "error" and issue["diagnostics"] for issue in outcome["issue"])
    assert sandbox.stored() == []


def test_all_problems_are_reported_at_once(sandbox: Sandbox, token: str, patient: str) -> None:
    resource = vital(patient)
    del resource["category"]
    resource["valueQuantity"]["code"] = "bpm"
    resource["subject"] = {"reference": "Patient/ffff00000000"}
    expressions = {e for i in sandbox.post_observation(token, resource).json()["issue"] for e in i["expression"]}
    assert {"Observation.category", "Observation.valueQuantity.code", "Observation.subject.reference"} <= expressions


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        ("{not json", "application/fhir+json", 400),
        ("[]", "application/fhir+json", 400),
        (json.dumps({"resourceType": "Patient"}), "application/fhir+json", 400),
        (json.dumps({"resourceType": "Observation"}), "application/xml", 415),
    ],
)
def test_unreadable_bodies(sandbox: Sandbox, token: str, content: str, content_type: str, status: int) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    resp = sandbox.http.post(f"/fhir/r4/{PRACTICE}/Observation", content=content, headers=headers)
    assert resp.status_code == status
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_conditional_create_returns_the_existing_resource(sandbox: Sandbox, token: str, patient: str) -> None:
    resource = vital(patient, identifier="reading-1")
    condition = {"If-None-Exist": "identifier=urn:vitalbridge:reading|reading-1"}
    first = sandbox.post_observation(token, resource, **condition)
    assert first.status_code == 201
    second = sandbox.post_observation(token, resource, **condition)
    assert second.status_code == 200
    assert second.json() == first.json()
    assert second.headers["location"] == first.headers["location"]
    assert len(sandbox.stored()) == 1
    assert sandbox.stats()["conditional_matches"] == 1


def test_conditional_create_with_several_matches_is_412(sandbox: Sandbox, token: str, patient: str) -> None:
    resource = vital(patient, identifier="dup")
    assert sandbox.post_observation(token, resource).status_code == 201
    assert sandbox.post_observation(token, resource).status_code == 201
    resp = sandbox.post_observation(token, resource, **{"If-None-Exist": "identifier=dup"})
    assert resp.status_code == 412
    assert len(sandbox.stored()) == 2


def test_conditional_create_with_unsupported_criteria_is_400(sandbox: Sandbox, token: str, patient: str) -> None:
    resp = sandbox.post_observation(token, vital(patient), **{"If-None-Exist": "status=final"})
    assert resp.status_code == 400


def test_prefer_return_minimal(sandbox: Sandbox, token: str, patient: str) -> None:
    resp = sandbox.post_observation(token, vital(patient), Prefer="return=minimal")
    assert resp.status_code == 201
    assert resp.content == b""
    assert "/Observation/" in resp.headers["location"]


def test_observation_search_by_patient_code_identifier_with_paging(sandbox: Sandbox, token: str) -> None:
    first, second = sandbox.patient_ids(token, count=2)
    for n in range(5):
        sandbox.post_observation(token, vital(first, identifier=f"hr-{n}"))
    sandbox.post_observation(token, bp_panel(first))
    sandbox.post_observation(token, vital(second, identifier="other"))

    def ids(**params: Any) -> list[str]:
        resp = sandbox.get("Observation", token, params=params)
        assert resp.status_code == 200, resp.text
        return [e["resource"]["id"] for e in resp.json().get("entry", [])]

    assert len(ids(patient=first)) == 6
    assert len(ids(subject=f"Patient/{second}")) == 1
    assert len(ids(patient=first, code="http://loinc.org|85354-9")) == 1
    assert len(ids(code="8867-4,85354-9")) == 7
    assert len(ids(identifier="urn:vitalbridge:reading|hr-3")) == 1
    assert len(ids(category="vital-signs")) == 7

    page = sandbox.get("Observation", token, params={"patient": first, "_count": 4}).json()
    assert page["total"] == 6
    assert len(page["entry"]) == 4
    next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = sandbox.http.get(next_url, headers={"Authorization": f"Bearer {token}"}).json()
    assert len(rest["entry"]) == 2
    assert not [link for link in rest["link"] if link["relation"] == "next"]
    assert sandbox.get("Observation", token, params={"value": "72"}).status_code == 400


def test_concurrent_conditional_creates_store_one_resource(sandbox: Sandbox, token: str, patient: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    resource = json.dumps(vital(patient, identifier="racy"))
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/fhir+json",
        "If-None-Exist": "identifier=urn:vitalbridge:reading|racy",
    }

    def post(_: int) -> int:
        with httpx.Client(base_url=sandbox.url, timeout=10) as client:
            return client.post(f"/fhir/r4/{PRACTICE}/Observation", content=resource, headers=headers).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(post, range(16)))
    assert statuses == [200] * 15 + [201]
    assert len(sandbox.stored()) == 1


DATA_ABSENT = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
            "code": "not-performed",
            "display": "Not Performed",
        }
    ]
}


@pytest.mark.parametrize("absent", [[1], [0], [0, 1]])
def test_bp_component_with_data_absent_reason_is_accepted(
    sandbox: Sandbox, token: str, patient: str, absent: list[int]
) -> None:
    # R4 vital-signs vs-3 (and the example observation-example-bloodpressure-dar): a component
    # without a value carries a dataAbsentReason instead.
    resource = bp_panel(patient)
    for i in absent:
        del resource["component"][i]["valueQuantity"]
        resource["component"][i]["dataAbsentReason"] = DATA_ABSENT
    resp = sandbox.post_observation(token, resource)
    assert resp.status_code == 201, resp.text
    assert [("valueQuantity" in c, "dataAbsentReason" in c) for c in resp.json()["component"]] == [
        (i not in absent, i in absent) for i in (0, 1)
    ]


def test_bp_component_with_neither_value_nor_reason_is_refused(sandbox: Sandbox, token: str, patient: str) -> None:
    resource = bp_panel(patient)
    del resource["component"][1]["valueQuantity"]
    resp = sandbox.post_observation(token, resource)
    assert resp.status_code == 422
    expressions = [e for issue in resp.json()["issue"] for e in issue.get("expression", [])]
    assert "Observation.component[1].valueQuantity" in expressions
