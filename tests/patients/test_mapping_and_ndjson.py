"""Pure layers: FHIR Patient → registry mapping, NDJSON framing with offsets, error-file issues,
and the polling policy."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import httpx
import pytest

from vitalbridge.errors import EhrForbidden, EhrRateLimited, EhrUnavailable, ValidationFailed
from vitalbridge.patients.bulk import ndjson
from vitalbridge.patients.bulk.jobs import outcome_issues
from vitalbridge.patients.bulk.policy import PollPolicy
from vitalbridge.patients.fhir_mapping import map_patient

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def patient(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "p-1",
        "identifier": [
            {"system": "urn:ssn", "value": "123-45-6789", "type": {"coding": [{"system": V2_0203, "code": "SS"}]}},
            {
                "use": "old",
                "system": "urn:mrn",
                "value": "OLD-1",
                "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
            },
            {"system": "urn:mrn", "value": "MRN-7", "type": {"coding": [{"system": V2_0203, "code": "MR"}]}},
            {"system": "urn:practice-id", "value": "X-9"},
        ],
        "name": [
            {"use": "old", "family": "Maiden", "given": ["Ann"], "period": {"end": "2001-01-01"}},
            {"use": "usual", "family": "Nick", "given": ["Annie"]},
            {"use": "official", "family": "Official", "given": ["Ann", "Marie"]},
        ],
        "telecom": [
            {"system": "email", "value": "a@example.org"},
            {"system": "phone", "value": "555-0101", "use": "work"},
            {"system": "phone", "value": "555-0102", "use": "mobile"},
        ],
        "gender": "female",
        "birthDate": "1950-02-03",
        "address": [{"use": "home", "line": ["1 Main St"], "city": "Worcester", "state": "MA", "postalCode": "01602"}],
    }
    doc.update(overrides)
    return doc


def test_mapping_picks_official_name_current_mrn_and_phone() -> None:
    p = map_patient(patient())
    assert (p.ehr_id, p.given_name, p.family_name) == ("p-1", "Ann Marie", "Official")
    assert (p.mrn, p.mrn_system) == ("MRN-7", "urn:mrn")
    assert p.phone == "555-0102"  # mobile beats work when there is no home phone
    assert p.birth_date == date(1950, 2, 3)
    assert p.gender == "female"
    assert p.address == {"line": ["1 Main St"], "city": "Worcester", "state": "MA", "postal_code": "01602"}
    assert p.active
    assert p.replaced_by is None
    values = [i["value"] for i in p.identifiers]
    assert "123-45-6789" not in values  # no SSN in the registry
    assert values == ["OLD-1", "MRN-7", "X-9"]


def test_practice_mrn_system_wins_over_the_type_code() -> None:
    p = map_patient(patient(), mrn_system="urn:practice-id")
    assert (p.mrn, p.mrn_system) == ("X-9", "urn:practice-id")


def test_replaced_by_link_and_inactive() -> None:
    doc = patient(
        active=False,
        link=[
            {"other": {"reference": "Patient/p-0"}, "type": "replaces"},
            {"other": {"reference": "https://ehr.example/fhir/Patient/p-2/_history/3"}, "type": "replaced-by"},
        ],
    )
    p = map_patient(json.dumps(doc).encode())
    assert not p.active
    assert p.replaced_by == "p-2"


@pytest.mark.parametrize(
    "doc",
    [
        {**patient(), "birthDate": "03/02/1950"},
        {**patient(), "gender": 42},
        {"resourceType": "Observation", "id": "o-1"},
    ],
)
def test_invalid_patients_are_refused_without_quoting_values(doc: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        map_patient(doc)
    assert "03/02/1950" not in str(caught.value)
    assert "Official" not in str(caught.value)


def test_patient_without_id_is_refused() -> None:
    doc = patient()
    del doc["id"]
    with pytest.raises(ValidationFailed):
        map_patient(doc)


def _split(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos = [], 0
    for size in sizes:
        out.append(data[pos : pos + size])
        pos += size
    out.append(data[pos:])
    return out


@pytest.mark.parametrize("sizes", [[], [1, 1, 1, 1], [5, 0, 3], [17], [2, 30, 1]])
def test_lines_and_offsets_whatever_the_chunking(sizes: list[int]) -> None:
    data = b'{"a":1}\n{"b":2}\r\n\n{"c":3}'
    got = list(ndjson.lines_with_offsets(_split(data, sizes)))
    assert got == [(b'{"a":1}', 8), (b'{"b":2}', 17), (b"", 18), (b'{"c":3}', 25)]
    # Resuming at an offset continues the numbering of bytes.
    assert list(ndjson.lines_with_offsets([data[17:]], start=17)) == [(b"", 18), (b'{"c":3}', 25)]


def test_a_runaway_line_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ndjson, "MAX_LINE_BYTES", 10)
    with pytest.raises(ndjson.LineTooLong):
        list(ndjson.lines_with_offsets([b"x" * 6, b"y" * 6]))


def test_operation_outcome_lines_become_issues() -> None:
    line = json.dumps(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "error", "code": "processing", "diagnostics": "Patient/9 could not be exported"},
                {"severity": "warning", "code": "incomplete"},
            ],
        }
    ).encode()
    issues = list(outcome_issues(line, 4))
    assert issues == [
        {"line": 4, "severity": "error", "code": "processing", "diagnostics": "Patient/9 could not be exported"},
        {"line": 4, "severity": "warning", "code": "incomplete", "diagnostics": ""},
    ]
    assert list(outcome_issues(b"not json", 5)) == [{"line": 5, "code": "unreadable-outcome"}]
    assert list(outcome_issues(b'{"resourceType":"Patient"}', 6)) == [{"line": 6, "code": "unreadable-outcome"}]


def test_poll_policy() -> None:
    policy = PollPolicy(min_poll_interval_s=30, max_poll_interval_s=600, max_failures=3, backoff_base_s=2)
    assert policy.next_poll_in(None) == 30
    assert policy.next_poll_in(5) == 30  # never faster than the minimum
    assert policy.next_poll_in(120) == 120  # the server's Retry-After when longer
    assert policy.next_poll_in(10_000) == 600
    assert policy.after_failure(EhrRateLimited("slow down", retry_after=45), 1) == 45
    assert policy.after_failure(EhrUnavailable("503"), 1) == 30
    assert PollPolicy(min_poll_interval_s=0.1, backoff_base_s=1).after_failure(EhrUnavailable("503"), 3) == 4
    assert policy.after_failure(httpx.ReadError("reset"), 1) == 30
    assert policy.after_failure(EhrForbidden("scope"), 1) is None
    assert policy.after_failure(ValueError("bug"), 1) is None
    assert policy.after_failure(EhrUnavailable("503"), 4) is None  # retry budget spent
