"""Bulk $export population sync against the sandbox over real HTTP (SPEC §4 "Population sync")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import TEST_SECRET_KEY
from tests.patients.support import patient_count, stats
from tests.sandbox.support import PRACTICE
from tests.smart.conftest import BACKEND_SCOPES, SmartEnv
from vitalbridge.audit.models import AuditEntry
from vitalbridge.errors import EhrNotFound
from vitalbridge.patients.bulk.jobs import SyncFailed, SyncOptions, create_job, job_files
from vitalbridge.patients.bulk.policy import PollPolicy
from vitalbridge.patients.bulk.sync import Progress, run
from vitalbridge.patients.models import BulkSyncJob, BulkSyncStatus, Patient
from vitalbridge.tenancy.models import Practice

N = 1000
FAST = PollPolicy(min_poll_interval_s=0.05, backoff_base_s=0.05)
ACTOR = "service:test"


@pytest.fixture
def sandbox_options() -> dict[str, Any]:
    return {
        "patients_per_practice": N,
        "export_file_max_resources": 400,  # three files: 400 + 400 + 200
        # Long enough that the hub has to poll (the sandbox answers 202 with Retry-After: 1 first).
        "export_job_s": 0.5,
    }


def start(env: SmartEnv, options: SyncOptions) -> str:
    with env.hub.sessions() as session:
        practice = session.get(Practice, env.practice.id)
        assert practice is not None
    return create_job(env.hub, practice, options, actor=ACTOR)


def job(env: SmartEnv, job_id: str) -> BulkSyncJob:
    with env.hub.sessions() as session:
        row = session.get(BulkSyncJob, job_id)
        assert row is not None
        return row


def distinct_ehr_ids(env: SmartEnv) -> int:
    with env.hub.sessions() as session:
        return int(session.scalar(select(func.count(func.distinct(Patient.ehr_id)))) or 0)


def test_sync_imports_every_patient_once_and_honours_retry_after(smart_env: SmartEnv) -> None:
    options = SyncOptions(batch_size=250, policy=FAST)
    job_id = start(smart_env, options)
    seen: list[Progress] = []
    result = run(smart_env.hub, job_id, options, actor=ACTOR, progress=seen.append)

    assert patient_count(smart_env) == N
    assert distinct_ehr_ids(smart_env) == N
    row = job(smart_env, job_id)
    assert row.status is BulkSyncStatus.completed
    assert (row.patients_created, row.patients_updated, row.lines_rejected) == (N, 0, 0)
    assert row.polls >= 2  # at least one 202 before the manifest
    assert row.manifest is not None
    with smart_env.hub.sessions() as session:
        files = job_files(session, job_id)
    assert [(f.lines_done, f.done) for f in files] == [(400, True), (400, True), (200, True)]
    assert result.created == N
    assert result.early_polls == 0
    sandbox = stats(smart_env)
    assert sandbox["exports_started"] == 1
    assert sandbox["export_polls"] == row.polls
    # Retry-After was honoured although the hub's own minimum interval is 50 ms.
    assert sandbox["export_polls_early"] == 0
    assert seen[-1].phase == "done"
    with smart_env.hub.sessions() as session:
        batches = session.scalar(select(func.count()).where(AuditEntry.action == "patients.bulk_imported"))
        assert batches == 5  # 400 → 250 + 150, 400 → 250 + 150, 200
        done = session.scalar(select(AuditEntry).where(AuditEntry.action == "patients.bulk_sync.completed"))
        assert done is not None

    # A second sync refreshes the same patients: nothing new.
    again = start(smart_env, options)
    run(smart_env.hub, again, options, actor=ACTOR)
    assert patient_count(smart_env) == N
    assert (job(smart_env, again).patients_created, job(smart_env, again).patients_updated) == (0, N)


class Interrupted(Exception):
    """Stands in for a crash in the middle of a file."""


def test_interrupted_sync_resumes_without_duplicates(smart_env: SmartEnv) -> None:
    options = SyncOptions(batch_size=150, policy=FAST)
    job_id = start(smart_env, options)
    batches = 0

    def crash_in_the_second_file(p: Progress) -> None:
        # Reports come after each committed batch and each finished file: 150, 300, 400 and
        # "file 1 done", then the first batch of file 2 — crash right after that one commits.
        nonlocal batches
        if p.phase == "downloading" and p.lines:
            batches += 1
            if batches == 5:
                raise Interrupted

    with pytest.raises(Interrupted):
        run(smart_env.hub, job_id, options, actor=ACTOR, progress=crash_in_the_second_file)
    row = job(smart_env, job_id)
    assert row.status is BulkSyncStatus.downloading  # resumable, not failed
    with smart_env.hub.sessions() as session:
        files = job_files(session, job_id)
    assert [(f.lines_done, f.done) for f in files] == [(400, True), (150, False), (0, False)]
    committed = patient_count(smart_env)
    assert committed == 550

    resumed = run(smart_env.hub, job_id, options, actor=ACTOR)
    assert patient_count(smart_env) == N
    assert distinct_ehr_ids(smart_env) == N
    # Only what was not committed was read again: the sandbox ignores Range, so the hub skipped
    # the committed lines of the partly imported file instead of importing them twice.
    assert resumed.lines == N - committed
    assert resumed.created == N - committed
    assert resumed.updated == 0
    row = job(smart_env, job_id)
    assert row.status is BulkSyncStatus.completed
    assert (row.patients_created, row.patients_updated) == (N, 0)
    assert stats(smart_env)["exports_started"] == 1  # the export itself was not started again


def test_transient_ehr_failures_are_retried(smart_env: SmartEnv) -> None:
    fault = {"practice": PRACTICE, "error_rate": 0.35, "error_status": 503, "retry_after_s": 1, "seed": 7}
    assert smart_env.sandbox.http.put("/_sandbox/faults", json=fault).status_code == 200
    options = SyncOptions(batch_size=500, policy=FAST)
    job_id = start(smart_env, options)
    result = run(smart_env.hub, job_id, options, actor=ACTOR)
    sandbox = stats(smart_env)
    # Seed 7 fails the first two kick-offs, a status poll and a later request.
    assert sandbox["faults_injected"].get("error", 0) >= 3
    assert job(smart_env, job_id).status is BulkSyncStatus.completed
    assert patient_count(smart_env) == N
    assert result.early_polls == 0
    assert sandbox["export_polls_early"] == 0


def test_permanent_refusal_fails_the_job_with_a_reason(smart_env: SmartEnv) -> None:
    options = SyncOptions(group="no-such-group", policy=FAST)
    job_id = start(smart_env, options)
    with pytest.raises(EhrNotFound):
        run(smart_env.hub, job_id, options, actor=ACTOR)
    row = job(smart_env, job_id)
    assert row.status is BulkSyncStatus.failed
    assert row.error is not None
    assert row.error.startswith("ehr_not_found")
    assert patient_count(smart_env) == 0


def test_group_export_and_since(smart_env: SmartEnv) -> None:
    # Synthetic patients were last updated between 2025-01-01 and mid-February 2025.
    since = datetime(2025, 1, 20, tzinfo=UTC)
    options = SyncOptions(group="all", since=since, policy=FAST)
    job_id = start(smart_env, options)
    result = run(smart_env.hub, job_id, options, actor=ACTOR)
    assert 0 < result.created < N
    assert patient_count(smart_env) == result.created
    manifest = job(smart_env, job_id).manifest
    assert manifest is not None
    assert sum(o["count"] for o in manifest["output"]) == result.created


def test_expired_export_is_a_clear_failure(smart_env: SmartEnv) -> None:
    options = SyncOptions(policy=FAST)
    job_id = start(smart_env, options)
    with smart_env.hub.sessions() as session, session.begin():
        row = session.get(BulkSyncJob, job_id)
        assert row is not None
        row.status_url = f"{smart_env.sandbox.base()}/bulkstatus/0000000000000000deadbeef"
    with pytest.raises(SyncFailed):
        run(smart_env.hub, job_id, options, actor=ACTOR)
    row = job(smart_env, job_id)
    assert row.status is BulkSyncStatus.failed
    assert "expired or was cancelled" in (row.error or "")


def test_ctrl_c_cancels_the_export_at_the_ehr(smart_env: SmartEnv, tmp_path: Any) -> None:
    """The CLI in its own process; SIGINT while it polls → DELETE at the EHR, job cancelled."""
    # This test's sandbox needs a long-running export: restart the env's practice on one.
    from vitalbridge.sandbox.app import create_sandbox_app
    from vitalbridge.sandbox.config import SandboxConfig
    from vitalbridge.sandbox.profile import Profile
    from vitalbridge.servers import ServerThread

    config = SandboxConfig(practices=(PRACTICE,), patients_per_practice=50, export_job_s=60.0, profile=Profile.generic)
    with ServerThread(create_sandbox_app(config)) as sb_url:
        import httpx

        with httpx.Client(base_url=sb_url) as sb:
            body = {
                "client_id": "vitalbridge-hub",
                "jwks_url": f"{smart_env.hub_url}/.well-known/jwks/{smart_env.tenant.org_id}.json",
                "scopes": BACKEND_SCOPES,
                "practices": [PRACTICE],
            }
            assert sb.post("/_sandbox/clients", json=body).status_code in (200, 201)
        with smart_env.hub.sessions() as session, session.begin():
            practice = session.get(Practice, smart_env.practice.id)
            assert practice is not None
            practice.fhir_base_url = f"{sb_url}/fhir/r4/{PRACTICE}"
            practice.token_url = f"{sb_url}/oauth/oauth2/token"
        env = {
            **os.environ,
            "VB_DATABASE_URL": smart_env.hub.settings.database_url,
            "VB_SECRET_KEY": TEST_SECRET_KEY,
            "VB_ALLOW_PRIVATE_URLS": "true",
            "VB_PUBLIC_URL": smart_env.hub_url,
            "VB_DATA_DIR": str(tmp_path / "cli-data"),
            "VB_INPROCESS_WORKER": "false",
            "ECW_RATE_LIMIT": "1000",
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vitalbridge",
                "patients",
                "sync",
                "--org",
                smart_env.tenant.org_id,
                "--practice",
                PRACTICE,
                "--min-poll-interval",
                "0.2",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            job_id = _wait_for_status_url(smart_env, proc)
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        assert proc.returncode == 130, err.decode(errors="replace")
        assert b"cancelled sync" in err
        row = job(smart_env, job_id)
        assert row.status is BulkSyncStatus.cancelled
        assert row.status_url is not None
        # The export is gone at the EHR.
        with pytest.raises(EhrNotFound):
            smart_env.client().get(_conn(smart_env), row.status_url)


def _conn(env: SmartEnv) -> Any:
    from vitalbridge.ehr.connection import PracticeConnection

    with env.hub.sessions() as session:
        practice = session.get(Practice, env.practice.id)
        assert practice is not None
        return PracticeConnection.of(practice)


def _wait_for_status_url(env: SmartEnv, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _out, err = proc.communicate()
            raise AssertionError(f"the sync ended early: {err.decode(errors='replace')}")
        with env.hub.sessions() as session:
            row = session.scalar(select(BulkSyncJob).where(BulkSyncJob.status_url.is_not(None)))
            if row is not None and row.polls >= 1:
                return row.id
        time.sleep(0.1)
    raise AssertionError("the sync never started polling")
