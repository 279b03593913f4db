"""``Patient`` read and search (FHIR R4 Patient; SPEC §4 "Patient import", §11).

Search parameters: ``name`` (case-insensitive substring of given, family or "given family"),
``family`` and ``given`` (case-insensitive prefix, the FHIR string default), ``birthdate``
(``YYYY[-MM[-DD]]`` with an optional eq/ne/gt/ge/lt/le prefix), ``identifier``
(``system|value`` or a bare value), ``gender``, ``_id``; several parameters AND together.
Merged patients follow ``merges.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from vitalbridge.sandbox.errors import FhirError, bad_request, not_found
from vitalbridge.sandbox.fhir.auth import require
from vitalbridge.sandbox.fhir.merges import MergeMode
from vitalbridge.sandbox.fhir.search import parse_query, searchset, split_token
from vitalbridge.sandbox.oauth.scopes import Interaction
from vitalbridge.sandbox.responses import fhir_json
from vitalbridge.sandbox.state import FHIR_PREFIX, SandboxState, fhir_base, sandbox_state
from vitalbridge.sandbox.synthetic import PatientSummary

router = APIRouter()

SEARCH_PARAMS = ("name", "family", "given", "birthdate", "identifier", "gender", "_id")
_DATE = re.compile(r"^(eq|ne|gt|ge|lt|le)?(\d{4}(?:-\d{2}(?:-\d{2})?)?)$")


def patient_resource(state: SandboxState, practice: str, index: int) -> dict[str, Any]:
    """The Patient as it reads now: synthetic fields plus whatever merges changed."""
    patients = state.patients_of(practice)
    resource = patients.resource(index)
    merged = state.merges.merged_away(practice, index)
    if merged is not None:
        resource["active"] = False
        resource["link"] = [
            {"other": {"reference": f"Patient/{patients.id_for(merged.into_index)}"}, "type": "replaced-by"}
        ]
        resource["meta"]["versionId"] = "2"
    for absorbed in state.merges.absorbed(practice, index):
        resource["identifier"].append(
            {"use": "old", "system": patients.mrn_system, "value": patients.mrn_for(absorbed.old_index)}
        )
        link = {"other": {"reference": f"Patient/{patients.id_for(absorbed.old_index)}"}, "type": "replaces"}
        resource.setdefault("link", []).append(link)
        resource["meta"]["versionId"] = "2"
    return resource


def visible(state: SandboxState, practice: str, index: int) -> bool:
    """False for patients merged away in a mode that makes their id disappear."""
    merged = state.merges.merged_away(practice, index)
    return merged is None or merged.mode is MergeMode.link


@router.get(FHIR_PREFIX + "/{practice}/Patient/{patient_id}")
async def read_patient(practice: str, patient_id: str, request: Request) -> Response:
    state = sandbox_state(request)
    patients = state.patients_of(practice)
    access = require(request, state, practice, "Patient", Interaction.read)
    index = patients.index_of(patient_id)
    if index is None:
        raise not_found(f"Patient/{patient_id} does not exist in practice {practice}")
    if access.patient_only is not None and access.patient_only != patient_id:
        raise FhirError(403, "forbidden", "a patient/ scope allows only the launch patient")
    merged = state.merges.merged_away(practice, index)
    if merged is not None and merged.mode is MergeMode.gone:
        raise FhirError(410, "deleted", f"Patient/{patient_id} was merged and no longer exists")
    if merged is not None and merged.mode is MergeMode.not_found:
        raise not_found(f"Patient/{patient_id} does not exist in practice {practice}")
    resource = patient_resource(state, practice, index)
    return fhir_json(resource, headers={"ETag": f'W/"{resource["meta"]["versionId"]}"'})


@router.get(FHIR_PREFIX + "/{practice}/Patient")
async def search_patients(practice: str, request: Request) -> Response:
    state = sandbox_state(request)
    patients = state.patients_of(practice)
    access = require(request, state, practice, "Patient", Interaction.search)
    cfg = state.config
    query = parse_query(request, "Patient", SEARCH_PARAMS, cfg.search_default_count, cfg.search_max_count)

    candidates: Sequence[int] = range(patients.count)
    if access.patient_only is not None:
        only = patients.index_of(access.patient_only)
        candidates = [only] if only is not None else []
    for value in query.values("_id"):
        index = patients.index_of(value)
        candidates = [i for i in candidates if i == index] if index is not None else []
    for value in query.values("identifier"):
        candidates = _by_identifier(state, practice, value, candidates)

    tests = [_predicate(name, value) for name, value in query.params if name not in ("_id", "identifier")]

    def keep(index: int) -> bool:
        if not visible(state, practice, index):
            return False
        # Only compute the patient when a parameter needs its fields: paging 100k is cheap.
        return not tests or all(test(summary) for summary in [patients.summary(index)] for test in tests)

    matches = [i for i in candidates if keep(i)]
    page = matches[query.offset : query.offset + query.count]
    resources = [patient_resource(state, practice, i) for i in page]
    return fhir_json(searchset(fhir_base(request, practice), "Patient", query, len(matches), resources))


def _by_identifier(state: SandboxState, practice: str, value: str, candidates: Sequence[int]) -> list[int]:
    patients = state.patients_of(practice)
    system, mrn = split_token(value)
    if system not in (None, patients.mrn_system):
        return []
    index = patients.index_of_mrn(mrn)
    if index is None:
        return []
    found = {index}
    survivor = state.merges.survivor_of_mrn(practice, index)
    while survivor is not None:  # the old MRN travels to the survivor (use: old)
        found.add(survivor)
        survivor = state.merges.survivor_of_mrn(practice, survivor)
    return [i for i in sorted(found) if i in candidates]


def _predicate(name: str, value: str) -> Callable[[PatientSummary], bool]:
    needle = value.casefold()
    if name == "name":
        return lambda s: (
            needle in s.given.casefold()
            or needle in s.family.casefold()
            or needle in (f"{s.given} {s.family}".casefold())
        )
    if name == "family":
        return lambda s: s.family.casefold().startswith(needle)
    if name == "given":
        return lambda s: s.given.casefold().startswith(needle)
    if name == "gender":
        if value not in ("male", "female", "other", "unknown"):
            raise bad_request("gender must be male, female, other or unknown", expression=["Patient.gender"])
        return lambda s: s.gender == value
    if name == "birthdate":
        return _birthdate(value)
    raise bad_request(f"search parameter {name!r} is not supported")


def _birthdate(value: str) -> Callable[[PatientSummary], bool]:
    match = _DATE.match(value)
    if match is None:
        raise bad_request(
            f"birthdate {value!r} must be YYYY, YYYY-MM or YYYY-MM-DD, optionally prefixed eq/gt/ge/lt/le/ne"
        )
    prefix, date = match[1] or "eq", match[2]
    width = len(date)
    comparisons: dict[str, Callable[[str], bool]] = {
        "eq": lambda d: d[:width] == date,
        "ne": lambda d: d[:width] != date,
        "gt": lambda d: d[:width] > date,
        "ge": lambda d: d[:width] >= date,
        "lt": lambda d: d[:width] < date,
        "le": lambda d: d[:width] <= date,
    }
    compare = comparisons[prefix]
    return lambda s: compare(s.birthdate)
