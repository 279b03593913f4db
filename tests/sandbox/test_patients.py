"""Patient read and search over synthetic patients: deterministic data, search parameters,
paging by `next` links, strict parameter checking, and merges (SPEC §4, §11)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.conftest import SandboxFactory
from tests.sandbox.support import PRACTICE, Sandbox, vital


@pytest.fixture
def token(sandbox: Sandbox) -> str:
    sandbox.register("reader", client_secret="s", scopes=["system/Patient.read", "system/Observation.write"])
    return sandbox.basic_token("reader", "s")


def _search(sandbox: Sandbox, token: str, **params: Any) -> dict[str, Any]:
    resp = sandbox.get("Patient", token, params=params)
    assert resp.status_code == 200, resp.text
    bundle: dict[str, Any] = resp.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    return bundle


def _resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", [])]


def test_patient_read_has_the_fields_an_import_needs(sandbox: Sandbox, token: str) -> None:
    patient_id = sandbox.patient_ids(token, count=1)[0]
    resp = sandbox.get(f"Patient/{patient_id}", token)
    assert resp.status_code == 200
    patient = resp.json()
    assert patient["id"] == patient_id
    assert patient["name"][0]["family"]
    assert patient["name"][0]["given"]
    assert patient["gender"] in ("male", "female")
    assert len(patient["birthDate"]) == 10
    assert patient["identifier"][0]["system"] == f"urn:vitalbridge:sandbox:{PRACTICE}:mrn"
    assert patient["identifier"][0]["value"].startswith("MRN-")
    assert patient["telecom"][0]["system"] == "phone"
    assert patient["address"][0]["city"]


def test_unknown_patient_is_404(sandbox: Sandbox, token: str) -> None:
    assert sandbox.get("Patient/ffff00000000", token).status_code == 404
    assert sandbox.get("Patient/not-an-id", token).status_code == 404


def test_same_seed_same_patients_other_seed_other_patients(make_sandbox: SandboxFactory) -> None:
    def first_page(seed: int) -> list[dict[str, Any]]:
        sb = make_sandbox(seed=seed)
        sb.register("c", client_secret="s")
        return _resources(_search(sb, sb.basic_token("c", "s"), _count=10))

    seven = first_page(7)
    assert seven == first_page(7)
    assert [p["name"] for p in first_page(8)] != [p["name"] for p in seven]


def test_name_search_is_partial_and_case_insensitive(sandbox: Sandbox, token: str) -> None:
    everyone = _resources(_search(sandbox, token, _count=100)) + _resources(_search(sandbox, token, _offset=100))
    family = everyone[0]["name"][0]["family"]
    fragment = family[1:4].upper()
    bundle = _search(sandbox, token, name=fragment, _count=100)
    expected = [
        p for p in everyone
        if fragment.lower() in p["name"][0]["family"].lower() or fragment.lower() in p["name"][0]["given"][0].lower()
    ]  # fmt: skip
    assert bundle["total"] == len(expected) > 0
    assert {p["id"] for p in _resources(bundle)} == {p["id"] for p in expected}


def test_family_given_birthdate_gender_and_identifier_searches(sandbox: Sandbox, token: str) -> None:
    target = _resources(_search(sandbox, token, _count=1, _offset=17))[0]
    family, given = target["name"][0]["family"], target["name"][0]["given"][0]
    combined = _search(sandbox, token, family=family.lower()[:3], given=given, birthdate=target["birthDate"])
    assert target["id"] in {p["id"] for p in _resources(combined)}
    for patient in _resources(combined):
        assert patient["birthDate"] == target["birthDate"]
        assert patient["name"][0]["family"].lower().startswith(family.lower()[:3])

    mrn = target["identifier"][0]
    for value in (f"{mrn['system']}|{mrn['value']}", mrn["value"]):
        assert [p["id"] for p in _resources(_search(sandbox, token, identifier=value))] == [target["id"]]
    assert _search(sandbox, token, identifier=f"urn:other|{mrn['value']}")["total"] == 0

    males = _search(sandbox, token, gender="male", _count=100)
    assert all(p["gender"] == "male" for p in _resources(males))
    year = target["birthDate"][:4]
    for patient in _resources(_search(sandbox, token, birthdate=f"ge{year}", _count=100)):
        assert patient["birthDate"][:4] >= year


def test_paging_by_next_links_visits_every_patient_once(sandbox: Sandbox, token: str) -> None:
    url: str | None = f"{sandbox.base()}/Patient?_count=7"
    seen: list[str] = []
    pages = 0
    while url:
        resp = sandbox.http.get(url, headers={"Authorization": f"Bearer {token}"})
        bundle = resp.json()
        assert bundle["total"] == sandbox.config.patients_per_practice
        assert all(e["fullUrl"] == f"{sandbox.base()}/Patient/{e['resource']['id']}" for e in bundle["entry"])
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        pages += 1
    assert len(seen) == len(set(seen)) == sandbox.config.patients_per_practice
    assert pages == -(-sandbox.config.patients_per_practice // 7)


def test_default_page_size_and_cap(sandbox: Sandbox, token: str) -> None:
    assert len(_resources(_search(sandbox, token))) == 20
    assert len(_resources(_search(sandbox, token, _count=1000))) == 100
    assert _search(sandbox, token, _count=0)["total"] == sandbox.config.patients_per_practice


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"nmae": "smith"}, "nmae"),
        ({"_count": "lots"}, "_count"),
        ({"birthdate": "03/15/1985"}, "birthdate"),
        ({"gender": "m"}, "gender"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_search_parameters_are_400_naming_them(
    sandbox: Sandbox, token: str, params: dict[str, str], named: str
) -> None:
    resp = sandbox.get("Patient", token, params=params)
    assert resp.status_code == 400
    outcome = resp.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert named in outcome["issue"][0]["diagnostics"]


def _merge(sandbox: Sandbox, old: str, into: str, mode: str | None = None) -> dict[str, Any]:
    body = {"practice": PRACTICE, "from": old, "into": into} | ({"mode": mode} if mode else {})
    resp = sandbox.http.post("/_sandbox/patients/merge", json=body)
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


def test_merge_link_mode_answers_replaced_by(sandbox: Sandbox, token: str) -> None:
    old, survivor = sandbox.patient_ids(token, count=2)
    old_mrn = sandbox.get(f"Patient/{old}", token).json()["identifier"][0]["value"]
    _merge(sandbox, old, survivor)

    merged = sandbox.get(f"Patient/{old}", token).json()
    assert merged["active"] is False
    assert merged["link"] == [{"other": {"reference": f"Patient/{survivor}"}, "type": "replaced-by"}]
    kept = sandbox.get(f"Patient/{survivor}", token).json()
    assert {"use": "old", "system": kept["identifier"][0]["system"], "value": old_mrn} in kept["identifier"]
    assert {"other": {"reference": f"Patient/{old}"}, "type": "replaces"} in kept["link"]
    by_old_mrn = {p["id"] for p in _resources(_search(sandbox, token, identifier=old_mrn))}
    assert by_old_mrn == {old, survivor}

    refused = sandbox.post_observation(token, vital(old))
    assert refused.status_code == 422
    issue = refused.json()["issue"][0]
    assert f"replaced by Patient/{survivor}" in issue["diagnostics"]
    assert issue["expression"] == ["Observation.subject.reference"]


@pytest.mark.parametrize(("mode", "status"), [("gone", 410), ("not_found", 404)])
def test_merge_modes_that_hide_the_old_id(sandbox: Sandbox, token: str, mode: str, status: int) -> None:
    old, survivor = sandbox.patient_ids(token, count=2)
    old_mrn = sandbox.get(f"Patient/{old}", token).json()["identifier"][0]["value"]
    _merge(sandbox, old, survivor, mode)
    assert sandbox.get(f"Patient/{old}", token).status_code == status
    assert [p["id"] for p in _resources(_search(sandbox, token, identifier=old_mrn))] == [survivor]
    assert _search(sandbox, token)["total"] == sandbox.config.patients_per_practice - 1
    assert sandbox.post_observation(token, vital(old)).status_code == 422


def test_merge_refusals(sandbox: Sandbox, token: str) -> None:
    a, b = sandbox.patient_ids(token, count=2)
    post = sandbox.http.post
    assert post("/_sandbox/patients/merge", json={"practice": PRACTICE, "from": a, "into": a}).status_code == 422
    assert post("/_sandbox/patients/merge", json={"practice": PRACTICE, "from": "nope", "into": b}).status_code == 422
    _merge(sandbox, a, b)
    assert post("/_sandbox/patients/merge", json={"practice": PRACTICE, "from": a, "into": b}).status_code == 422
