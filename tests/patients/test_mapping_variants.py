"""FHIR Patient → registry mapping for the variants real servers send: a name given only as
``HumanName.text``, an SSN identified only by its system, and the pre-R4 v2-0203 code system URI.
The R4 example Patient (tests/fhir/samples/r4-examples/patient-example.json) is mapped as well."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vitalbridge.patients.fhir_mapping import map_patient

R4_TYPES = "http://terminology.hl7.org/CodeSystem/v2-0203"
LEGACY_TYPES = "http://hl7.org/fhir/v2/0203"
US_SSN = "http://hl7.org/fhir/sid/us-ssn"
R4_EXAMPLE = Path(__file__).parent.parent / "fhir" / "samples" / "r4-examples" / "patient-example.json"


def patient(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p-9"} | fields


def typed(code: str, system: str | None, value: str, id_system: str = "urn:mrn") -> dict[str, Any]:
    coding: dict[str, Any] = {"code": code}
    if system is not None:
        coding["system"] = system
    return {"system": id_system, "value": value, "type": {"coding": [coding]}}


@pytest.mark.parametrize(
    ("names", "given", "family"),
    [
        ([{"text": "Peter James Chalmers"}], "", "Peter James Chalmers"),
        ([{"use": "official", "text": "  María  José   Carreño Quiñones "}], "", "María José Carreño Quiñones"),
        # An empty official name is skipped for a usable one.
        ([{"use": "official"}, {"use": "usual", "text": "Jim Chalmers"}], "", "Jim Chalmers"),
        # Parts win over text when both are there (text is then only a rendering of them).
        (
            [{"text": "Dr. P. J. Chalmers", "family": "Chalmers", "given": ["Peter", "James"]}],
            "Peter James",
            "Chalmers",
        ),
        # The official name as text beats a usual name in parts.
        ([{"use": "usual", "given": ["Jim"]}, {"use": "official", "text": "Peter Chalmers"}], "", "Peter Chalmers"),
        # An ended name is passed over for a current one, even a text-only one.
        ([{"family": "Windsor", "period": {"end": "2002"}}, {"text": "Peter Chalmers"}], "", "Peter Chalmers"),
        ([{"family": "Windsor", "period": {"end": "2002"}}], "", "Windsor"),
    ],
)
def test_name_given_only_as_text_is_kept(names: list[dict[str, Any]], given: str, family: str) -> None:
    mapped = map_patient(patient(name=names))
    assert (mapped.given_name, mapped.family_name) == (given, family)
    assert mapped.display_name == " ".join(p for p in (given, family) if p)


@pytest.mark.parametrize(
    "ssn",
    [
        {"system": US_SSN, "value": "123-45-6789"},  # identified by its system alone
        {"system": US_SSN, "value": "123456789", "use": "official"},
        typed("SS", R4_TYPES, "123-45-6789", "urn:ssn"),
        typed("SS", LEGACY_TYPES, "123-45-6789", "urn:ssn"),  # typed under the pre-R4 URI
        typed("SS", None, "123-45-6789", "urn:ssn"),
    ],
)
def test_ssn_is_never_kept(ssn: dict[str, Any]) -> None:
    mapped = map_patient(patient(identifier=[ssn, typed("MR", R4_TYPES, "MRN-1")]))
    assert mapped.mrn == "MRN-1"
    assert mapped.identifiers == [{"system": "urn:mrn", "value": "MRN-1", "type": "MR"}]
    assert "123" not in json.dumps(mapped.identifiers)


def test_ssn_system_is_never_the_mrn_even_when_configured() -> None:
    mapped = map_patient(patient(identifier=[{"system": US_SSN, "value": "123-45-6789"}]), mrn_system=US_SSN)
    assert mapped.mrn is None
    assert mapped.identifiers == []


@pytest.mark.parametrize("system", [R4_TYPES, LEGACY_TYPES, None])
def test_mr_type_is_read_under_both_v2_0203_uris(system: str | None) -> None:
    mapped = map_patient(patient(identifier=[{"system": "urn:other", "value": "X-1"}, typed("MR", system, "MRN-2")]))
    assert (mapped.mrn, mapped.mrn_system) == ("MRN-2", "urn:mrn")
    assert mapped.identifiers[1]["type"] == "MR"


def test_mr_code_from_another_code_system_is_not_an_mrn() -> None:
    mapped = map_patient(patient(identifier=[typed("MR", "http://example.org/local-types", "LOCAL-1")]))
    assert mapped.mrn is None


def test_r4_example_patient() -> None:
    mapped = map_patient(json.loads(R4_EXAMPLE.read_text()))
    assert (mapped.ehr_id, mapped.given_name, mapped.family_name) == ("example", "Peter James", "Chalmers")
    assert (mapped.mrn, mapped.mrn_system) == ("12345", "urn:oid:1.2.36.146.595.217.0.1")
    assert mapped.gender == "male"
    assert mapped.phone == "(03) 3410 5613"  # mobile: the home entry has no number, work is not preferred
