"""Bulk sync jobs as rows (``bulk_sync_jobs``, ``bulk_sync_files``): create, find the unfinished
one, finish, cancel at the EHR (SPEC §4 "Population sync"; Bulk Data IG "Delete a Bulk Data
Request"), and read the issues of OperationOutcome error files."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge import audit
from vitalbridge.db.base import utcnow
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.errors import EhrNotFound, VitalbridgeError
from vitalbridge.patients.bulk import protocol
from vitalbridge.patients.bulk.policy import PollPolicy
from vitalbridge.patients.models import UNFINISHED_SYNC, BulkSyncFile, BulkSyncJob, BulkSyncStatus
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Practice

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500


class SyncFailed(VitalbridgeError):
    """The sync stopped on an error it cannot get past; the job row says which."""

    error_code = "bulk_sync_failed"


@dataclass(frozen=True)
class SyncOptions:
    since: datetime | None = None
    group: str | None = None
    batch_size: int = DEFAULT_BATCH
    policy: PollPolicy = field(default_factory=PollPolicy)


def connection(session: Session, practice_id: str) -> tuple[PracticeConnection, Practice]:
    practice = session.get(Practice, practice_id)
    if practice is None:
        raise SyncFailed("the practice of this sync no longer exists")
    return PracticeConnection.of(practice), practice


def unfinished_job(session: Session, practice_id: str) -> BulkSyncJob | None:
    return session.scalar(
        select(BulkSyncJob)
        .where(BulkSyncJob.practice_id == practice_id, BulkSyncJob.status.in_(UNFINISHED_SYNC))
        .order_by(BulkSyncJob.created_at.desc())
        .limit(1)
    )


def create_job(hub: Hub, practice: Practice, options: SyncOptions, *, actor: audit.Actor | str) -> str:
    """A new job row (the kick-off happens in ``run``)."""
    with hub.sessions() as session, session.begin():
        job = BulkSyncJob(
            organization_id=practice.organization_id,
            practice_id=practice.id,
            status=BulkSyncStatus.kicked_off,
            group_id=options.group,
            since=options.since,
            polls=0,
            patients_created=0,
            patients_updated=0,
            lines_rejected=0,
            patients_retired=0,
            issues=[],
            started_by=str(actor),
        )
        session.add(job)
        session.flush()
        audit.record(
            session,
            action="patients.bulk_sync.started",
            outcome=audit.Outcome.success,
            actor=actor,
            organization_id=practice.organization_id,
            practice_id=practice.id,
            resource_type="BulkSyncJob",
            resource_ids=[job.id],
            detail={"group": options.group is not None, "since": options.since is not None},
        )
        return job.id


def finish(
    hub: Hub, job_id: str, status: BulkSyncStatus, *, actor: audit.Actor | str, error: str | None = None
) -> None:
    with hub.sessions() as session, session.begin():
        job = session.get(BulkSyncJob, job_id)
        assert job is not None
        job.status = status
        job.error = error
        job.finished_at = utcnow()
        audit.record(
            session,
            action=f"patients.bulk_sync.{status.value}",
            outcome=audit.Outcome.success if status is BulkSyncStatus.completed else audit.Outcome.failure,
            actor=actor,
            organization_id=job.organization_id,
            practice_id=job.practice_id,
            resource_type="BulkSyncJob",
            resource_ids=[job.id],
            detail={
                "created": job.patients_created,
                "updated": job.patients_updated,
                "rejected": job.lines_rejected,
                "retired": job.patients_retired or 0,
                "polls": job.polls,
            },
        )


def outcome_issues(raw: bytes, line_no: int) -> Iterator[dict[str, Any]]:
    """The issues of one OperationOutcome line of an error file (kept in the database only)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        yield {"line": line_no, "code": "unreadable-outcome"}
        return
    if not isinstance(doc, dict) or doc.get("resourceType") != "OperationOutcome":
        yield {"line": line_no, "code": "unreadable-outcome"}
        return
    for issue in doc.get("issue") or []:
        if isinstance(issue, dict):
            yield {
                "line": line_no,
                "severity": str(issue.get("severity") or "")[:16],
                "code": str(issue.get("code") or "")[:64],
                "diagnostics": str(issue.get("diagnostics") or "")[:500],
            }


def cancel(hub: Hub, job_id: str, *, actor: audit.Actor | str) -> bool:
    """Operator stop (Ctrl-C): ``DELETE`` the export at the EHR and mark the job cancelled.

    Returns whether the EHR acknowledged the DELETE (a gone export counts as cancelled too).
    """
    with hub.sessions() as session:
        job = session.get(BulkSyncJob, job_id)
        if job is None or job.status not in UNFINISHED_SYNC:
            return False
        status_url = job.status_url
        conn, _practice = connection(session, job.practice_id)
    acknowledged = False
    if status_url:
        try:
            protocol.cancel(hub, conn, status_url, actor=actor, correlation_id=job_id.replace("-", ""))
            acknowledged = True
        except EhrNotFound:
            acknowledged = True
        except (VitalbridgeError, httpx.TransportError) as exc:
            log.warning("bulk sync cancel: the EHR did not acknowledge the DELETE (%s)", type(exc).__name__)
    finish(hub, job_id, BulkSyncStatus.cancelled, actor=actor, error="cancelled by the operator")
    return acknowledged


def job_files(session: Session, job_id: str) -> list[BulkSyncFile]:
    return list(
        session.scalars(select(BulkSyncFile).where(BulkSyncFile.job_id == job_id).order_by(BulkSyncFile.position))
    )
