"""Bulk ``$export`` as the field-trial servers do it (issue 12, item 4; Bulk Data Access IG v2
"Response - Complete Status"): a manifest's ``deleted`` files retire patients, files on another
host are fetched without the token when ``requiresAccessToken`` is false, an expired file says a
restart fixes it, and retries while polling are reported instead of a silent wait.

The EHR and the object store are two small servers on loopback (different ports, so different
origins). Their manifests and NDJSON lines are written for these tests after the IG's shapes:
``output``/``error``/``deleted`` entries of ``{type, url, count}``, ``deleted`` lines being
Bundles whose entries carry ``request: {method: DELETE, url: "Patient/…"}``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.delivery.support import Env, make_env
from vitalbridge.audit.models import AuditEntry
from vitalbridge.cli.patients_commands import _Reporter
from vitalbridge.errors import ConfigurationError
from vitalbridge.patients.bulk.jobs import SyncFailed, SyncOptions, create_job
from vitalbridge.patients.bulk.policy import PollPolicy
from vitalbridge.patients.bulk.sync import REPORT_EVERY_S, Progress, run
from vitalbridge.patients.models import BulkSyncJob, BulkSyncStatus, Patient, PatientStatus
from vitalbridge.runtime import Hub
from vitalbridge.servers import ServerThread
from vitalbridge.tenancy.models import Practice

ACTOR = "service:test"
FAST = PollPolicy(min_poll_interval_s=0.0, backoff_base_s=0.01)
TOKEN = "ehr-bearer-token"


def patient_line(ehr_id: str, family: str) -> bytes:
    resource = {
        "resourceType": "Patient",
        "id": ehr_id,
        "active": True,
        "name": [{"family": family, "given": ["Test"]}],
        "birthDate": "1950-01-01",
    }
    return json.dumps(resource).encode() + b"\n"


def deletion_bundle(*urls: str) -> bytes:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": u}} for u in urls],
    }
    return json.dumps(bundle).encode() + b"\n"


@dataclass
class FileServer:
    """Serves NDJSON files by name; records the headers of every request."""

    files: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def serve(self, request: Request) -> Response:
        with self.lock:
            self.seen.append(dict(request.headers))
        status, body = self.files.get(request.path_params["name"], (404, b""))
        return Response(body, status_code=status, media_type="application/fhir+ndjson")


class BulkEhr:
    """Token endpoint, kick-off, a scripted status URL, and files of its own."""

    def __init__(self) -> None:
        self.status_script: list[tuple[int, dict[str, str]]] = []
        self.manifest: dict[str, Any] = {}
        self.files = FileServer()
        self.app = Starlette(
            routes=[
                Route("/oauth/oauth2/token", self.token, methods=["POST"]),
                Route("/fhir/r4/JAFJCD/Patient/$export", self.kick_off),
                Route("/fhir/r4/JAFJCD/status", self.status, methods=["GET", "DELETE"]),
                Route("/fhir/r4/JAFJCD/files/{name}", self.files.serve),
            ]
        )

    async def token(self, _request: Request) -> Response:
        return JSONResponse({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600})

    async def kick_off(self, request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return Response(status_code=202, headers={"Content-Location": f"{base}/fhir/r4/JAFJCD/status"})

    async def status(self, _request: Request) -> Response:
        if self.status_script:
            code, headers = self.status_script.pop(0)
            return Response(status_code=code, headers=headers)
        return JSONResponse(self.manifest)


@dataclass
class World:
    hub: Hub
    env: Env
    ehr: BulkEhr
    ehr_url: str
    store: FileServer
    store_url: str

    def manifest(self, *, requires_token: bool, output: list[str], deleted: tuple[str, ...] | list[str] = ()) -> None:
        self.ehr.manifest = {
            "transactionTime": "2026-12-01T00:00:00Z",
            "request": f"{self.ehr_url}/fhir/r4/JAFJCD/Patient/$export?_since=2026-11-01T00:00:00Z",
            "requiresAccessToken": requires_token,
            "output": [{"type": "Patient", "url": u} for u in output],
            "deleted": [{"type": "Bundle", "url": u} for u in deleted],
            "error": [],
        }

    def sync(self, **kwargs: Any) -> tuple[str, Progress | None, list[Progress]]:
        with self.hub.sessions() as session:
            practice = session.get(Practice, self.env.practice_id)
            assert practice is not None
        options = SyncOptions(policy=kwargs.pop("policy", FAST))
        job_id = create_job(self.hub, practice, options, actor=ACTOR)
        seen: list[Progress] = []

        def record(p: Progress) -> None:
            seen.append(Progress(**{k: getattr(p, k) for k in p.__dataclass_fields__}))

        result = run(self.hub, job_id, options, actor=ACTOR, progress=record, **kwargs)
        return job_id, result, seen

    def job(self) -> BulkSyncJob:
        with self.hub.sessions() as session:
            job = session.scalars(select(BulkSyncJob)).one()
            session.expunge(job)
            return job

    def patient(self, ehr_id: str) -> Patient:
        with self.hub.sessions() as session:
            row = session.scalars(select(Patient).where(Patient.ehr_id == ehr_id)).one()
            session.expunge(row)
            return row


@pytest.fixture
def world(hub: Hub) -> Iterator[World]:
    ehr = BulkEhr()
    store = FileServer()
    store_app = Starlette(routes=[Route("/bucket/{name}", store.serve)])
    with ServerThread(ehr.app) as ehr_url, ServerThread(store_app) as store_url:
        env = make_env(hub, ehr_url, ehr_patient_id="p-1")
        with hub.sessions() as session, session.begin():
            for ehr_id in ("p-2", "p-3"):
                session.add(
                    Patient(
                        organization_id=env.org_id,
                        practice_id=env.practice_id,
                        ehr_id=ehr_id,
                        given_name="Registry",
                        family_name=ehr_id,
                    )
                )
        yield World(hub, env, ehr, ehr_url, store, store_url)


def test_deleted_files_retire_the_patients_they_name(world: World) -> None:
    world.ehr.files.files["patients.ndjson"] = (200, patient_line("p-4", "Newcomer") + patient_line("p-3", "Kept"))
    world.ehr.files.files["deleted.ndjson"] = (
        200,
        deletion_bundle("Patient/p-1", "Observation/o-9", "Patient/p-2/_history/3")
        + deletion_bundle(f"{world.ehr_url}/fhir/r4/JAFJCD/Patient/p-unknown")
        + b'{"resourceType": "Patient", "id": "not-a-bundle"}\n',
    )
    base = f"{world.ehr_url}/fhir/r4/JAFJCD/files"
    world.manifest(requires_token=True, output=[f"{base}/patients.ndjson"], deleted=[f"{base}/deleted.ndjson"])
    _job_id, result, _seen = world.sync()
    assert result is not None
    assert result.retired == 2
    assert result.created == 1
    for gone in ("p-1", "p-2"):
        patient = world.patient(gone)
        assert patient.status is PatientStatus.inactive
        assert patient.status_reason == "ehr_gone"
    assert world.patient("p-3").status is PatientStatus.active
    job = world.job()
    assert job.status is BulkSyncStatus.completed
    assert job.patients_retired == 2
    assert {"file": 1, "line": 3, "code": "invalid-deleted-bundle"} in job.issues
    assert job.manifest is not None
    assert job.manifest["deleted"][0]["url"].endswith("deleted.ndjson")
    # Files on the EHR's own server carry the token.
    assert all(h.get("authorization") == f"Bearer {TOKEN}" for h in world.ehr.files.seen)


def test_files_on_another_host_without_access_token_are_fetched_without_it(world: World) -> None:
    world.store.files["p.ndjson"] = (200, patient_line("p-7", "Stored") + patient_line("p-8", "Stored"))
    world.store.files["d.ndjson"] = (200, deletion_bundle("Patient/p-2"))
    world.manifest(
        requires_token=False,
        output=[f"{world.store_url}/bucket/p.ndjson?X-Signature=abc"],
        deleted=[f"{world.store_url}/bucket/d.ndjson"],
    )
    _job_id, result, _seen = world.sync()
    assert result is not None
    assert (result.created, result.retired) == (2, 1)
    assert len(world.store.seen) == 2
    # The token never went to the object store.
    assert all("authorization" not in h for h in world.store.seen)
    with world.hub.sessions() as session:
        downloads = [
            e.detail for e in session.scalars(select(AuditEntry)) if e.detail.get("interaction") == "bulk-file"
        ]
    assert len(downloads) == 2
    assert all(d["authorization"] == "none" and "X-Signature" not in json.dumps(d) for d in downloads)


def test_files_on_another_host_that_require_the_token_are_refused(world: World) -> None:
    world.store.files["p.ndjson"] = (200, patient_line("p-7", "Stored"))
    world.manifest(requires_token=True, output=[f"{world.store_url}/bucket/p.ndjson"])
    with pytest.raises(ConfigurationError, match="refusing to send practice JAFJCD's credentials"):
        world.sync()
    assert world.store.seen == []
    assert world.job().status is BulkSyncStatus.failed


@pytest.mark.parametrize(("status", "on_store"), [(410, False), (404, False), (410, True)])
def test_an_expired_file_says_the_export_expired_and_a_restart_fixes_it(
    world: World, status: int, on_store: bool
) -> None:
    if on_store:
        world.store.files["p.ndjson"] = (status, b"")
        world.manifest(requires_token=False, output=[f"{world.store_url}/bucket/p.ndjson"])
    else:
        world.ehr.files.files["p.ndjson"] = (status, b"")
        world.manifest(requires_token=True, output=[f"{world.ehr_url}/fhir/r4/JAFJCD/files/p.ndjson"])
    with pytest.raises(SyncFailed) as failed:
        world.sync()
    for words in ("export expired", f"HTTP {status}", "restarting the sync fixes it", "--restart"):
        assert words in str(failed.value)
    job = world.job()
    assert job.status is BulkSyncStatus.failed
    assert "export expired" in (job.error or "")


def test_status_polls_during_5xx_retries_report_progress(world: World) -> None:
    world.ehr.files.files["p.ndjson"] = (200, patient_line("p-4", "Late"))
    world.manifest(requires_token=True, output=[f"{world.ehr_url}/fhir/r4/JAFJCD/files/p.ndjson"])
    world.ehr.status_script = [(503, {}), (502, {}), (503, {}), (202, {"X-Progress": "50%"})]
    slept: list[float] = []
    # Backoff of 40 s, 80 s, 160 s: long waits the operator must see progress through.
    policy = PollPolicy(min_poll_interval_s=1.0, backoff_base_s=40.0, max_poll_interval_s=600.0)
    _job_id, result, seen = world.sync(policy=policy, sleep=slept.append)
    assert result is not None
    assert result.created == 1
    assert result.retries == 3
    assert max(slept) <= REPORT_EVERY_S
    waiting = [p for p in seen if p.next_try_in is not None]
    # Every slice of every wait was preceded by a report: nothing longer than one slice is silent.
    assert len(waiting) == len(slept)
    assert [p.retries for p in waiting if p.last_failure][:1] == [1]
    assert {p.last_failure for p in waiting if p.last_failure} == {"HTTP 503", "HTTP 502"}
    assert any(p.next_try_in is not None and p.next_try_in > 60 for p in waiting)


def test_the_cli_progress_line_shows_retries(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress("job", "polling", polls=2, retries=3, last_failure="HTTP 503", next_try_in=42.0)
    _Reporter()(progress)
    line = capsys.readouterr().err
    assert "3 failed tries (last: HTTP 503)" in line
    assert "next try in 42 s" in line
    done = Progress("job", "downloading", files_total=2, files_done=1, lines=10, created=5, retired=4)
    reporter = _Reporter()
    reporter(done)
    assert "retired 4" in capsys.readouterr().err
