"""The fast Patient reader agrees with the full fhir.resources validation, line by line: for every
resource it accepts, the registry gets the same values; everything else goes the long way."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from vitalbridge.errors import ValidationFailed
from vitalbridge.patients.fhir_mapping import EhrPatient, map_patient, parse_patient, to_registry
from vitalbridge.patients.plain_patient import read_plain
from vitalbridge.sandbox.synthetic import SyntheticPatients

RICH: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p-1.a",
    "meta": {"versionId": "3", "lastUpdated": "2024-02-29T23:59:59.123+05:30"},
    "identifier": [
        {"use": "old", "system": "urn:mrn", "value": "OLD-1", "type": {"coding": [{"code": "MR"}]}},
        {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "123-45-6789"},
        {
            "use": "official",
            "type": {"coding": [{"system": "http://hl7.org/fhir/v2/0203", "code": "MR", "display": "MRN"}]},
            "system": "urn:mrn",
            "value": "MRN 7",
        },
        {"system": "urn:other", "value": "X-1", "type": {"text": "other"}},
    ],
    "active": False,
    "name": [
        {"use": "nickname", "given": ["Bo"]},
        {"use": "official", "family": "Nuñez-O'Neil", "given": ["Ana", "María"], "prefix": ["Dr."]},
        {"text": "Ana M. Nuñez"},
    ],
    "telecom": [
        {"system": "email", "value": "a@example.org"},
        {"system": "phone", "value": "+1 555 0100", "use": "work"},
        {"system": "phone", "value": "555-0101", "use": "mobile"},
    ],
    "gender": "female",
    "birthDate": "2000-02-29",
    "address": [
        {"use": "work", "line": ["1 Work Rd"], "city": "Boston"},
        {"use": "home", "type": "both", "line": ["2 Home St", "Apt 3"], "city": "Salem", "postalCode": "01970"},
    ],
}


def full(raw: bytes, mrn_system: str | None = None) -> EhrPatient | str:
    try:
        return to_registry(parse_patient(raw), mrn_system=mrn_system)
    except ValidationFailed as exc:
        return f"refused: {exc}"


def fast(raw: bytes, mrn_system: str | None = None) -> EhrPatient | str:
    try:
        return map_patient(raw, mrn_system=mrn_system)
    except ValidationFailed as exc:
        return f"refused: {exc}"


def _line(resource: dict[str, Any]) -> bytes:
    return json.dumps(resource).encode()


def test_sandbox_exports_take_the_fast_path_and_map_the_same() -> None:
    synthetic = SyntheticPatients(7, "PLAIN", 300)
    for index in range(300):
        raw = _line(synthetic.resource(index))
        assert read_plain(raw) is not None, index
        for system in (None, "urn:vitalbridge:sandbox:PLAIN:mrn"):
            assert fast(raw, system) == full(raw, system)


def test_a_rich_plain_patient_maps_the_same() -> None:
    raw = _line(RICH)
    assert read_plain(raw) is not None
    for system in (None, "urn:mrn", "urn:other"):
        mapped = fast(raw, system)
        assert mapped == full(raw, system)
        assert isinstance(mapped, EhrPatient)
    assert isinstance(mapped, EhrPatient)
    assert mapped.birth_date is not None


def _set(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    resource = copy.deepcopy(RICH)
    target: Any = resource
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return resource


def _drop(path: tuple[Any, ...]) -> dict[str, Any]:
    resource = copy.deepcopy(RICH)
    target: Any = resource
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return resource


OUTSIDE = {
    "unknown element": _set(("animal",), {"species": {"text": "dog"}}),
    "extension": _set(("extension",), [{"url": "urn:x", "valueString": "y"}]),
    "link": _set(("link",), [{"type": "replaced-by", "other": {"reference": "Patient/p-2"}}]),
    "name period": _set(("name", 1, "period"), {"end": "2020-01-01"}),
    "telecom rank": _set(("telecom", 1, "rank"), 1),
    "partial birth date": _set(("birthDate",), "1970"),
    "impossible birth date": _set(("birthDate",), "1970-02-30"),
    "birth date with time": _set(("birthDate",), "1970-01-01T00:00:00Z"),
    "null element": _set(("gender",), None),
    "empty array": _set(("telecom",), []),
    "empty object": _set(("address", 0), {}),
    "leading space": _set(("name", 1, "family"), " Nuñez"),
    "control character": _set(("name", 1, "family"), "Nu\x00ñez"),
    "unknown gender": _set(("gender",), "f"),
    "active as text": _set(("active",), "true"),
    "numeric id": _set(("id",), 17),
    "id too long": _set(("id",), "x" * 65),
    "id with slash": _set(("id",), "a/b"),
    "no id": _drop(("id",)),
    "offset past 14:00": _set(("meta", "lastUpdated"), "2024-01-01T00:00:00+15:00"),
    "impossible instant": _set(("meta", "lastUpdated"), "2024-02-30T00:00:00Z"),
    "code with double space": _set(("identifier", 0, "type", "coding", 0, "code"), "M  R"),
    "given not a list": _set(("name", 1, "given"), "Ana"),
    "not a Patient": _set(("resourceType",), "Practitioner"),
}


@pytest.mark.parametrize("case", sorted(OUTSIDE))
def test_anything_outside_the_plain_subset_goes_the_long_way_with_the_same_result(case: str) -> None:
    raw = _line(OUTSIDE[case])
    assert read_plain(raw) is None
    for system in (None, "urn:mrn"):
        assert fast(raw, system) == full(raw, system)


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"Patient"', b"{"])
def test_unreadable_lines_are_refused_as_before(raw: bytes) -> None:
    assert read_plain(raw) is None
    assert fast(raw) == full(raw)
    assert isinstance(fast(raw), str)
