"""Bulk Data ``$export`` (FHIR Bulk Data Access IG v2: kick-off, status, file request, delete;
SPEC §4 "Population sync").

Kick-off (``Patient/$export`` or ``Group/all/$export``) needs ``Prefer: respond-async`` and
answers 202 with ``Content-Location``. The status URL answers 202 with ``X-Progress`` and
``Retry-After`` while the job runs, 429 when polled sooner than that ``Retry-After`` (as real
servers do), then 200 with the manifest and an ``Expires`` header; ``DELETE`` cancels. Files are
NDJSON, generated and streamed line by line, and need the same client's bearer token.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from vitalbridge.sandbox.errors import FhirError, bad_request, forbidden, not_found
from vitalbridge.sandbox.fhir.auth import bearer
from vitalbridge.sandbox.fhir.bulk_jobs import ExportJob, split_files
from vitalbridge.sandbox.fhir.patients import patient_resource, visible
from vitalbridge.sandbox.fhir.store import now_instant
from vitalbridge.sandbox.oauth.scopes import Context, Interaction, granting_scope, needed_scope
from vitalbridge.sandbox.oauth.tokens import AccessToken
from vitalbridge.sandbox.responses import outcome_response
from vitalbridge.sandbox.state import FHIR_PREFIX, SandboxState, fhir_base, sandbox_state

router = APIRouter()

EXPORTABLE = ("Patient", "Observation")
GROUPS = ("all",)  # one group per practice: every patient
KICKOFF_PARAMS = frozenset({"_type", "_since", "_outputFormat"})
NDJSON_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
LINES_PER_CHUNK = 500


@router.get(FHIR_PREFIX + "/{practice}/Patient/$export")
async def patient_export(practice: str, request: Request) -> Response:
    return _kickoff(request, practice)


@router.get(FHIR_PREFIX + "/{practice}/Group/{group_id}/$export")
async def group_export(practice: str, group_id: str, request: Request) -> Response:
    sandbox_state(request).patients_of(practice)
    if group_id not in GROUPS:
        raise not_found(f"Group/{group_id} does not exist; the sandbox has Group/all (every patient)")
    return _kickoff(request, practice)


def _kickoff(request: Request, practice: str) -> Response:
    state = sandbox_state(request)
    patients = state.patients_of(practice)
    token = bearer(request, state, practice)
    if "respond-async" not in request.headers.get("prefer", ""):
        raise bad_request("bulk export needs the header Prefer: respond-async")
    accept = request.headers.get("accept", "application/fhir+json")
    if not any(t in accept for t in ("application/fhir+json", "application/json", "*/*")):
        raise bad_request("bulk export kick-off needs Accept: application/fhir+json")
    for name in request.query_params:
        if name not in KICKOFF_PARAMS:
            raise bad_request(
                f"kick-off parameter {name!r} is not supported; supported: {', '.join(sorted(KICKOFF_PARAMS))}"
            )
    output_format = request.query_params.get("_outputFormat")
    if output_format is not None and output_format not in NDJSON_FORMATS:
        raise bad_request("_outputFormat must be application/fhir+ndjson")
    types = _types(request.query_params.get("_type"), token)
    since = _since(request.query_params.get("_since"))

    patient_ids: Sequence[int] = []
    observation_ids: list[str] = []
    if "Patient" in types:
        everyone = since is None and not state.merges.records().get(practice)
        patient_ids = range(patients.count) if everyone else [
            i for i in range(patients.count)
            if visible(state, practice, i) and (since is None or patients.summary(i).last_updated > since)
        ]  # fmt: skip
    if "Observation" in types:
        for _p, resource in state.observations.all(practice):
            if since is None or _instant(resource["meta"]["lastUpdated"]) > since:
                observation_ids.append(resource["id"])

    cfg = state.config
    job = ExportJob(
        id=state.exports.new_id(),
        practice=practice,
        client_id=token.client_id,
        request_url=str(request.url),
        transaction_time=now_instant(),
        ready_at=time.monotonic() + cfg.export_job_s,
        expires_at=time.time() + cfg.export_job_s + cfg.export_retention_s,
        patients=patient_ids,
        observations=observation_ids,
    )
    per_file = max(1, cfg.export_file_max_resources)
    job.files = split_files("Patient", len(patient_ids), per_file) + split_files(
        "Observation", len(observation_ids), per_file
    )
    state.exports.add(job)
    state.stats.count("exports_started")
    status_url = f"{fhir_base(request, practice)}/bulkstatus/{job.id}"
    return outcome_response(
        202, "informational", "export started; poll Content-Location", {"Content-Location": status_url}, "information"
    )


def _types(raw: str | None, token: AccessToken) -> list[str]:
    context = Context.user if token.grant_id else Context.system
    if raw is None:
        readable = [t for t in EXPORTABLE if granting_scope(token.scopes, t, Interaction.read)]
        if not readable:
            raise forbidden(f"bulk export needs read scope on Patient or Observation, e.g. {context}/Patient.read")
        types = readable
    else:
        types = [t.strip() for t in raw.split(",") if t.strip()]
        unknown = [t for t in types if t not in EXPORTABLE]
        if unknown:
            raise bad_request(f"_type {', '.join(unknown)} cannot be exported; choose from {', '.join(EXPORTABLE)}")
    for resource in types:
        scope = granting_scope(token.scopes, resource, Interaction.read)
        if scope is None:
            raise forbidden(
                f"insufficient scope: exporting {resource} needs {needed_scope(context, resource, Interaction.read)}"
            )
        if scope.context is Context.patient:
            raise forbidden("bulk export is not available with patient/ scopes")
    return types


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _since(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        since = _instant(raw)
    except ValueError:
        since = None
    if since is None or since.tzinfo is None:
        raise bad_request("_since must be a FHIR instant with a time zone, e.g. 2026-01-01T00:00:00Z")
    return since.astimezone(UTC)


def _job(request: Request, practice: str, job_id: str) -> tuple[SandboxState, ExportJob]:
    state = sandbox_state(request)
    state.patients_of(practice)
    token = bearer(request, state, practice)
    job = state.exports.get(practice, job_id)
    if job is None or job.client_id != token.client_id:
        raise not_found("no such export job (finished jobs expire; cancelled jobs are gone)")
    return state, job


@router.get(FHIR_PREFIX + "/{practice}/bulkstatus/{job_id}")
async def export_status(practice: str, job_id: str, request: Request) -> Response:
    state, job = _job(request, practice, job_id)
    state.stats.count("export_polls")
    now = time.monotonic()
    if now < job.ready_at:
        if now < job.next_poll_at:
            state.stats.count("export_polls_early")
            wait = max(1, math.ceil(job.next_poll_at - now))
            raise FhirError(
                429, "throttled", f"polled sooner than Retry-After; wait {wait} s", headers={"Retry-After": str(wait)}
            )
        retry_after = max(1, math.ceil(job.ready_at - now))
        job.next_poll_at = now + retry_after
        progress = job.progress(now, state.config.export_job_s)
        return Response(
            status_code=202, headers={"X-Progress": f"{progress}% exported", "Retry-After": str(retry_after)}
        )
    manifest = {
        "transactionTime": job.transaction_time,
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [
            {
                "type": f.resource_type,
                "url": f"{fhir_base(request, practice)}/bulkfiles/{job.id}/{f.name}",
                "count": f.count,
            }
            for f in job.files
        ],
        "error": [],
    }
    return JSONResponse(manifest, headers={"Expires": formatdate(job.expires_at, usegmt=True)})


@router.delete(FHIR_PREFIX + "/{practice}/bulkstatus/{job_id}")
async def export_cancel(practice: str, job_id: str, request: Request) -> Response:
    state, job = _job(request, practice, job_id)
    state.exports.cancel(job.id)
    return outcome_response(202, "informational", "export cancelled", severity="information")


@router.get(FHIR_PREFIX + "/{practice}/bulkfiles/{job_id}/{name}")
async def export_file(practice: str, job_id: str, name: str, request: Request) -> Response:
    state, job = _job(request, practice, job_id)
    file = job.file(name)
    if file is None or time.monotonic() < job.ready_at:
        raise not_found(f"no file {name} in this export")
    if file.resource_type == "Patient":
        chunks = _patient_lines(state, practice, job.patients[file.start : file.stop])
    else:
        chunks = _observation_lines(state, practice, job.observations[file.start : file.stop])
    return StreamingResponse(chunks, media_type="application/fhir+ndjson")


async def _patient_lines(state: SandboxState, practice: str, indices: Sequence[int]) -> AsyncIterator[bytes]:
    for start in range(0, len(indices), LINES_PER_CHUNK):
        batch = indices[start : start + LINES_PER_CHUNK]
        yield "".join(_line(patient_resource(state, practice, i)) for i in batch).encode()
        await asyncio.sleep(0)  # let other requests in between chunks of a large file


async def _observation_lines(state: SandboxState, practice: str, ids: Sequence[str]) -> AsyncIterator[bytes]:
    for start in range(0, len(ids), LINES_PER_CHUNK):
        batch = [state.observations.get(practice, i) for i in ids[start : start + LINES_PER_CHUNK]]
        yield "".join(_line(r) for r in batch if r is not None).encode()
        await asyncio.sleep(0)


def _line(resource: dict[str, Any]) -> str:
    return json.dumps(resource, separators=(",", ":"), ensure_ascii=False) + "\n"
