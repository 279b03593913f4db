"""``Observation`` create, conditional create, read and search (FHIR R4 RESTful API §3.1.0.8,
§3.1.0.8.1 conditional create; SPEC §7 "Delivery", §11).

Create answers 201 with ``Location: {base}/Observation/{id}/_history/1`` and the stored
resource. With ``If-None-Exist: identifier=system|value`` one match answers 200 with the
existing resource (nothing created) and several answer 412. Invalid resources answer 422 with an
OperationOutcome naming each failing element; a subject that was merged away is refused with
an issue saying which patient replaced it.

The profile decides three things (``profile.py``): whether If-None-Exist is honoured, ignored
(eCW does not support conditional create) or refused; whether refusals are OperationOutcomes or
eCW's numeric codes (``ecw_errors.py``); and which practices have no write-back user (eCW 308).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from vitalbridge.sandbox.errors import FhirError, Issue, bad_request, forbidden, not_found, unprocessable
from vitalbridge.sandbox.fhir.auth import require
from vitalbridge.sandbox.fhir.ecw_errors import EcwCode, EcwError, from_issues
from vitalbridge.sandbox.fhir.merges import MergeMode
from vitalbridge.sandbox.fhir.search import Query, parse_query, searchset, split_token
from vitalbridge.sandbox.fhir.validation import validate_observation
from vitalbridge.sandbox.oauth.scopes import Interaction
from vitalbridge.sandbox.profile import ConditionalCreate
from vitalbridge.sandbox.responses import fhir_json
from vitalbridge.sandbox.state import FHIR_PREFIX, SandboxState, fhir_base, sandbox_state

router = APIRouter()

SEARCH_PARAMS = ("patient", "subject", "code", "identifier", "category", "_id")
JSON_TYPES = ("application/fhir+json", "application/json")


async def _read_resource(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise FhirError(415, "not-supported", "send the resource as application/fhir+json")
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object (a FHIR resource)")
    if body.get("resourceType") != "Observation":
        raise bad_request(
            f"resourceType must be Observation, got {body.get('resourceType')!r}",
            expression=["Observation.resourceType"],
        )
    return body


def _subject_checker(state: SandboxState, practice: str, base: str) -> Any:
    patients = state.patients_of(practice)

    def check(reference: str) -> Issue | None:
        local = reference.removeprefix(base + "/")
        kind, _, patient_id = local.partition("/")
        where = ("Observation.subject.reference",)
        if kind != "Patient" or not patient_id:
            return Issue("value", f"subject must reference Patient/{{id}}, got {reference!r}", where)
        index = patients.index_of(patient_id)
        if index is None:
            return Issue("not-found", f"subject Patient/{patient_id} does not exist in practice {practice}", where)
        merged = state.merges.merged_away(practice, index)
        if merged is not None and merged.mode is MergeMode.link:
            into = patients.id_for(merged.into_index)
            return Issue("processing", f"subject Patient/{patient_id} was merged: replaced by Patient/{into}", where)
        if merged is not None:
            return Issue("not-found", f"subject Patient/{patient_id} does not exist in practice {practice}", where)
        return None

    return check


def _created(base: str, resource: dict[str, Any], status: int, request: Request) -> Response:
    version = resource["meta"]["versionId"]
    headers = {
        "Location": f"{base}/Observation/{resource['id']}/_history/{version}",
        "ETag": f'W/"{version}"',
        "Last-Modified": resource["meta"]["lastUpdated"],
    }
    if request.headers.get("prefer", "").replace(" ", "") == "return=minimal":
        return Response(status_code=status, headers=headers)
    return fhir_json(resource, status, headers)


@router.post(FHIR_PREFIX + "/{practice}/Observation")
async def create_observation(practice: str, request: Request) -> Response:
    state = sandbox_state(request)
    state.patients_of(practice)
    access = require(request, state, practice, "Observation", Interaction.create)
    base = fhir_base(request, practice)
    body = await _read_resource(request)
    if access.patient_only is not None:
        reference = (body.get("subject") or {}).get("reference") if isinstance(body.get("subject"), dict) else None
        if reference != f"Patient/{access.patient_only}":
            raise forbidden("a patient/ scope allows writing only for the launch patient")
    behaviour = state.behaviour
    if practice in behaviour.writeback_user_missing:
        if behaviour.ecw_error_codes:
            raise EcwError(EcwCode.DEFAULT_WRITEBACK_USER_NOT_CONFIGURED)
        raise forbidden(f"practice {practice} has no default write-back user configured")
    body.pop("id", None)  # the server assigns ids on create (FHIR R4 §3.1.0.8)
    issues = validate_observation(body, _subject_checker(state, practice, base))
    if issues:
        raise from_issues(issues) if behaviour.ecw_error_codes else unprocessable(issues)

    condition = request.headers.get("if-none-exist")
    if condition is not None and behaviour.conditional_create is ConditionalCreate.refuse:
        raise FhirError(400, "not-supported", "conditional create (If-None-Exist) is not supported by this server")
    if behaviour.conditional_create is ConditionalCreate.ignore:
        # A server without conditional create does not look at the header: this POST creates.
        condition = None
    with state.observations.lock:  # search and create as one step: no duplicate under concurrency
        if condition is not None:
            matches = _conditional_matches(state, practice, condition)
            if len(matches) > 1:
                raise FhirError(412, "multiple-matches", f"If-None-Exist matched {len(matches)} Observations")
            if matches:
                state.stats.count("conditional_matches")
                return _created(base, matches[0], 200, request)
        stored = state.observations.add(practice, body)
    state.stats.count("observations_created", practice)
    return _created(base, stored, 201, request)


def _conditional_matches(state: SandboxState, practice: str, condition: str) -> list[dict[str, Any]]:
    params = parse_qsl(condition, keep_blank_values=True)
    if not params:
        raise bad_request("If-None-Exist is empty; use e.g. identifier=system|value")
    for name, value in params:
        if name not in SEARCH_PARAMS or not value:
            raise bad_request(f"If-None-Exist parameter {name!r} is not supported; use identifier=system|value")
    return _search(state, practice, Query(params, 0, 0))


@router.get(FHIR_PREFIX + "/{practice}/Observation/{obs_id}")
async def read_observation(practice: str, obs_id: str, request: Request) -> Response:
    return _read(request, practice, obs_id, None)


@router.get(FHIR_PREFIX + "/{practice}/Observation/{obs_id}/_history/{version}")
async def vread_observation(practice: str, obs_id: str, version: str, request: Request) -> Response:
    return _read(request, practice, obs_id, version)


def _read(request: Request, practice: str, obs_id: str, version: str | None) -> Response:
    state = sandbox_state(request)
    state.patients_of(practice)
    access = require(request, state, practice, "Observation", Interaction.read)
    resource = state.observations.get(practice, obs_id)
    if resource is None or (version is not None and version != resource["meta"]["versionId"]):
        raise not_found(f"Observation/{obs_id} does not exist in practice {practice}")
    if access.patient_only is not None and resource["subject"]["reference"] != f"Patient/{access.patient_only}":
        raise forbidden("a patient/ scope allows only the launch patient's Observations")
    return fhir_json(resource, headers={"ETag": f'W/"{resource["meta"]["versionId"]}"'})


@router.get(FHIR_PREFIX + "/{practice}/Observation")
async def search_observations(practice: str, request: Request) -> Response:
    state = sandbox_state(request)
    state.patients_of(practice)
    access = require(request, state, practice, "Observation", Interaction.search)
    cfg = state.config
    query = parse_query(request, "Observation", SEARCH_PARAMS, cfg.search_default_count, cfg.search_max_count)
    if access.patient_only is not None:
        query = Query([*query.params, ("patient", access.patient_only)], query.count, query.offset)
    matches = _search(state, practice, query)
    page = matches[query.offset : query.offset + query.count]
    return fhir_json(searchset(fhir_base(request, practice), "Observation", query, len(matches), page))


def _search(state: SandboxState, practice: str, query: Query) -> list[dict[str, Any]]:
    store = state.observations
    ids: list[str] | None = None

    def narrow(found: list[str]) -> None:
        nonlocal ids
        keep = set(found)
        ids = found if ids is None else [i for i in ids if i in keep]

    for name, value in query.params:
        if name in ("patient", "subject"):
            reference = value if "/" in value else f"Patient/{value}"
            narrow(store.ids_by_subject(practice, reference))
        elif name == "identifier":
            system, ident = split_token(value)
            narrow(store.ids_by_identifier(practice, system, ident))
        elif name == "_id":
            narrow([value] if store.get(practice, value) else [])
    resources = [r for i in (store.ids(practice) if ids is None else ids) if (r := store.get(practice, i))]
    for name, value in query.params:
        if name in ("code", "category"):
            wanted = [split_token(v) for v in value.split(",")]
            field = "code" if name == "code" else "category"
            resources = [r for r in resources if _has_coding(r.get(field), wanted)]
    return resources


def _has_coding(concepts: Any, wanted: list[tuple[str | None, str]]) -> bool:
    concepts = concepts if isinstance(concepts, list) else [concepts]
    codings = [c for concept in concepts if isinstance(concept, dict) for c in concept.get("coding") or []]
    return any(
        c.get("code") == code and (system is None or c.get("system") == system)
        for c in codings
        for system, code in wanted
    )
