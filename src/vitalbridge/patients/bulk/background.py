"""Population syncs started from the API (``POST /api/v1/ecw/patients/sync/``): each runs in a
thread of the hub process; its state is the job row, so a hub restart leaves it resumable (the
next start for the practice, from the API or the CLI, resumes it)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy.orm import Session

from vitalbridge import audit
from vitalbridge.errors import Conflict, NotFound
from vitalbridge.patients.bulk.jobs import SyncOptions, create_job, job_files, unfinished_job
from vitalbridge.patients.bulk.sync import run
from vitalbridge.patients.importer import resolve_practice
from vitalbridge.patients.models import BulkSyncJob
from vitalbridge.patients.schemas import SyncFileOut, SyncOut
from vitalbridge.runtime import Hub

log = logging.getLogger(__name__)

_EXTRA = "patients.bulk_sync.threads"
_LOCK = threading.Lock()


def _threads(hub: Hub) -> dict[str, threading.Thread]:
    threads = hub.extras.setdefault(_EXTRA, {})
    assert isinstance(threads, dict)
    return threads


def _run(hub: Hub, job_id: str, options: SyncOptions, actor: audit.Actor | str) -> None:
    try:
        run(hub, job_id, options, actor=actor)
    except Exception as exc:  # noqa: BLE001 - a background thread must not die silently; the job row has the reason
        log.warning("bulk sync %s stopped: %s", job_id, type(exc).__name__)


def start(
    hub: Hub,
    organization_id: str,
    practice_ref: str | None,
    *,
    since: datetime | None,
    group: str | None,
    actor: audit.Actor | str,
) -> str:
    with hub.sessions() as session:
        practice = resolve_practice(session, organization_id, practice_ref)
        existing = unfinished_job(session, practice.id)
        resume = existing.id if existing is not None else None
        options = (
            SyncOptions(since=existing.since, group=existing.group_id)
            if existing is not None
            else SyncOptions(since=since, group=group)
        )
    with _LOCK:
        threads = _threads(hub)
        if resume is not None and resume in threads and threads[resume].is_alive():
            raise Conflict("a sync of this practice is already running; follow it with GET …/sync/{id}")
        job_id = resume or create_job(hub, practice, options, actor=actor)
        thread = threading.Thread(
            target=_run, args=(hub, job_id, options, actor), name=f"bulk-sync-{job_id[:8]}", daemon=True
        )
        threads[job_id] = thread
        thread.start()
    return job_id


def describe(session: Session, organization_id: str, job_id: str) -> SyncOut:
    job = session.get(BulkSyncJob, job_id)
    if job is None or job.organization_id != organization_id:
        raise NotFound("no such sync in this organization")
    return SyncOut(
        id=job.id,
        practice_id=job.practice_id,
        status=job.status,
        group_id=job.group_id,
        since=job.since,
        polls=job.polls,
        patients_created=job.patients_created,
        patients_updated=job.patients_updated,
        lines_rejected=job.lines_rejected,
        patients_retired=job.patients_retired or 0,
        issues=len(job.issues or []),
        error=job.error,
        files=[
            SyncFileOut(
                resource_type=f.resource_type,
                is_error=f.is_error,
                is_deleted=f.is_deleted,
                expected_count=f.expected_count,
                lines_done=f.lines_done,
                done=f.done,
            )
            for f in job_files(session, job.id)
        ],
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


def wait(hub: Hub, job_id: str, timeout: float | None = None) -> bool:
    """Join a sync thread started here (tests, shutdown). True when it has finished."""
    thread = _threads(hub).get(job_id)
    if thread is None:
        return True
    thread.join(timeout)
    return not thread.is_alive()
