"""One population sync of a practice, resumable (SPEC §4 "Population sync").

State lives in ``bulk_sync_jobs`` / ``bulk_sync_files``. Each batch of patients (``batch_size``
lines) is upserted in one transaction together with the file's new ``lines_done`` /
``bytes_done`` and the job's counters, so after a crash — a killed process, a lost connection —
``run`` picks the job up where the last committed batch ended: it asks for the rest of the file
with ``Range`` or, when the server ignores Range, skips the lines already committed. Upserts are
keyed by (practice, EHR id), so even a line imported twice could not duplicate a patient.

Memory stays flat whatever the export size: one batch of mapped patients and one line buffer at
a time, a fresh database session per batch.

Nothing here holds a transaction open across an EHR call.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from vitalbridge import audit
from vitalbridge.db.base import utcnow
from vitalbridge.errors import EhrNotFound, EhrRateLimited, ValidationFailed, VitalbridgeError
from vitalbridge.patients.bulk import protocol
from vitalbridge.patients.bulk.deleted import NotADeletionBundle, deleted_patient_ids, retire
from vitalbridge.patients.bulk.jobs import SyncFailed, SyncOptions, connection, finish, outcome_issues
from vitalbridge.patients.bulk.ndjson import LineTooLong, lines_with_offsets
from vitalbridge.patients.fhir_mapping import EhrPatient, map_patient
from vitalbridge.patients.models import BulkSyncFile, BulkSyncJob, BulkSyncStatus
from vitalbridge.patients.registry import upsert_batch
from vitalbridge.patients.relink import rekey_from_export, relink_patient
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Practice

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500
# Issues kept on the job row (the counters keep counting past this).
MAX_ISSUES = 200


@dataclass
class Progress:
    """What the sync reports after each batch and poll (counts only: no PHI)."""

    job_id: str
    phase: str  # polling | downloading | done
    polls: int = 0
    early_polls: int = 0  # 429s from the status URL (should stay 0: the hub honours Retry-After)
    server_progress: str | None = None
    files_total: int = 0
    files_done: int = 0
    lines: int = 0  # lines read in this run
    created: int = 0
    updated: int = 0
    rejected: int = 0
    retired: int = 0  # registry patients retired by the manifest's ``deleted`` files
    # Transient failures (5xx, 429, network) retried so far, the last one's short description and
    # the seconds until the next try: reported while the sync waits, so no minute passes silently.
    retries: int = 0
    last_failure: str | None = None
    next_try_in: float | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return (self.created + self.updated) / elapsed if elapsed > 0 else 0.0


ProgressFn = Callable[[Progress], None]

# A wait longer than this is cut into slices with a progress report after each.
REPORT_EVERY_S = 10.0
EXPIRED = (
    "the export expired at the EHR: its files are gone (HTTP {status}); restarting the sync fixes it — "
    "a new export is made (`vitalbridge patients sync --restart`, or POST /api/v1/ecw/patients/sync/)"
)


def _failure_text(exc: Exception) -> str:
    """Counts-only description of a transient failure (no server text, which may quote PHI)."""
    status = getattr(exc, "status_code", None)
    if isinstance(exc, EhrRateLimited):
        return "HTTP 429"
    return f"HTTP {status}" if status else type(exc).__name__


def _noop(_p: Progress) -> None:
    return None


class FileKind(enum.Enum):
    output = "output"  # NDJSON of the exported resources
    error = "error"  # OperationOutcome NDJSON of the manifest's ``error``
    deleted = "deleted"  # Bundles of DELETE entries of the manifest's ``deleted``

    @classmethod
    def of(cls, f: BulkSyncFile) -> FileKind:
        return cls.error if f.is_error else cls.deleted if f.is_deleted else cls.output


class _Runner:
    def __init__(
        self,
        hub: Hub,
        job_id: str,
        options: SyncOptions,
        *,
        actor: audit.Actor | str,
        progress: ProgressFn,
        sleep: Callable[[float], None],
    ) -> None:
        self.hub = hub
        self.job_id = job_id
        self.options = options
        self.policy = options.policy
        self.actor = actor
        self.report = progress
        self.sleep = sleep
        self.progress = Progress(job_id, "polling")
        with hub.sessions() as session:
            job = session.get(BulkSyncJob, job_id)
            if job is None:
                raise SyncFailed("no such sync job")
            self.conn, practice = connection(session, job.practice_id)
            self.mrn_system = practice.mrn_system
            self.organization_id = job.organization_id
        self.correlation_id = job_id.replace("-", "")
        self.bearer = True

    # -- waiting ---------------------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        """Sleep ``seconds``, reporting progress at least every ``REPORT_EVERY_S``."""
        remaining = seconds
        while remaining > 0:
            self.progress.next_try_in = remaining
            self.report(self.progress)
            step = min(remaining, REPORT_EVERY_S)
            self.sleep(step)
            remaining -= step
        self.progress.next_try_in = None

    def _failed(self, what: str, exc: Exception, failures: int, wait: float) -> None:
        self.progress.retries += 1
        self.progress.last_failure = _failure_text(exc)
        log.info("bulk sync %s: transient %s, retry %d in %.1f s", what, type(exc).__name__, failures, wait)

    # -- retries ---------------------------------------------------------------------------------

    def _with_retries(self, what: str, call: Callable[[], Any]) -> Any:
        failures = 0
        while True:
            try:
                return call()
            except (VitalbridgeError, httpx.TransportError) as exc:
                failures += 1
                wait = self.policy.after_failure(exc, failures)
                if wait is None:
                    raise
                self._failed(what, exc, failures, wait)
                self._wait(wait)

    # -- phases ----------------------------------------------------------------------------------

    def kick_off(self) -> str:
        status_url = self._with_retries(
            "kick-off",
            lambda: protocol.kick_off(
                self.hub,
                self.conn,
                group=self.options.group,
                since=self.options.since,
                actor=self.actor,
                correlation_id=self.correlation_id,
            ),
        )
        assert isinstance(status_url, str)
        with self.hub.sessions() as session, session.begin():
            job = session.get(BulkSyncJob, self.job_id)
            assert job is not None
            job.status_url = status_url
        return status_url

    def wait_for_manifest(self, status_url: str) -> dict[str, Any]:
        failures = 0
        not_before = 0.0  # monotonic time before which the server asked not to be polled
        while True:
            delay = not_before - time.monotonic()
            if delay > 0:
                self._wait(delay)
            try:
                status = protocol.poll(
                    self.hub, self.conn, status_url, actor=self.actor, correlation_id=self.correlation_id
                )
            except EhrNotFound:
                raise SyncFailed(
                    "the EHR no longer knows this export (it expired or was cancelled); start a new sync"
                ) from None
            except (VitalbridgeError, httpx.TransportError) as exc:
                failures += 1
                if isinstance(exc, EhrRateLimited):
                    self.progress.early_polls += 1
                wait = self.policy.after_failure(exc, failures)
                if wait is None:
                    raise
                self._failed("status poll", exc, failures, wait)
                # Never earlier than a Retry-After the server gave before this failure.
                not_before = max(not_before, time.monotonic() + wait)
                continue
            failures = 0
            self.progress.polls += 1
            self._count_poll()
            if status.done:
                assert status.manifest is not None
                return status.manifest
            self.progress.server_progress = status.progress
            self.report(self.progress)
            not_before = time.monotonic() + self.policy.next_poll_in(status.retry_after)

    def _count_poll(self) -> None:
        with self.hub.sessions() as session, session.begin():
            job = session.get(BulkSyncJob, self.job_id)
            assert job is not None
            job.polls += 1

    def store_manifest(self, manifest: dict[str, Any]) -> None:
        outputs = [o for o in manifest.get("output") or [] if isinstance(o, dict) and isinstance(o.get("url"), str)]
        errors = [e for e in manifest.get("error") or [] if isinstance(e, dict) and isinstance(e.get("url"), str)]
        deleted = [d for d in manifest.get("deleted") or [] if isinstance(d, dict) and isinstance(d.get("url"), str)]
        with self.hub.sessions() as session, session.begin():
            job = session.get(BulkSyncJob, self.job_id)
            assert job is not None
            # The manifest is kept without its file list's size limits in mind: urls and counts only.
            job.manifest = {
                "transactionTime": manifest.get("transactionTime"),
                "requiresAccessToken": manifest.get("requiresAccessToken"),
                "output": [{"type": o.get("type"), "url": o["url"], "count": o.get("count")} for o in outputs],
                "error": [{"type": e.get("type"), "url": e["url"]} for e in errors],
                "deleted": [{"type": d.get("type"), "url": d["url"], "count": d.get("count")} for d in deleted],
            }
            job.transaction_time = str(manifest.get("transactionTime") or "")[:64] or None
            entries = (
                [(o, False, False) for o in outputs]
                + [(e, True, False) for e in errors]
                + [(d, False, True) for d in deleted]
            )
            for position, (entry, is_error, is_deleted) in enumerate(entries):
                count = entry.get("count")
                default_type = "OperationOutcome" if is_error else "Bundle" if is_deleted else ""
                session.add(
                    BulkSyncFile(
                        job_id=job.id,
                        position=position,
                        resource_type=str(entry.get("type") or default_type)[:64],
                        url=str(entry["url"])[:1000],
                        is_error=is_error,
                        is_deleted=is_deleted,
                        expected_count=count if isinstance(count, int) else None,
                        lines_done=0,
                        bytes_done=0,
                        done=False,
                    )
                )
            job.status = BulkSyncStatus.downloading

    def pending_files(self) -> list[tuple[str, str, str, FileKind]]:
        with self.hub.sessions() as session:
            job = session.get(BulkSyncJob, self.job_id)
            # Bulk Data IG: requiresAccessToken is required; a manifest without it gets the token
            # (and so only files on the EHR's own server).
            self.bearer = not (job is not None and (job.manifest or {}).get("requiresAccessToken") is False)
            files = session.scalars(
                select(BulkSyncFile).where(BulkSyncFile.job_id == self.job_id).order_by(BulkSyncFile.position)
            ).all()
            self.progress.files_total = len(files)
            self.progress.files_done = sum(1 for f in files if f.done)
            return [(f.id, f.url, f.resource_type, FileKind.of(f)) for f in files if not f.done]

    def import_file(self, file_id: str, url: str, resource_type: str, kind: FileKind) -> None:
        if kind is FileKind.output and resource_type != "Patient":
            # The hub asked for _type=Patient; a server that sends more is not an error, just extra.
            self._mark_done(file_id, note={"code": "skipped-type", "type": resource_type[:64]})
            return
        failures = 0
        while True:
            with self.hub.sessions() as session:
                f = session.get(BulkSyncFile, file_id)
                assert f is not None
                lines_done, bytes_done = f.lines_done, f.bytes_done
            try:
                self._stream(file_id, url, kind, lines_done, bytes_done)
                break
            except EhrNotFound as exc:
                # 404/410 for a file the manifest listed: the export's files were removed (expired).
                raise SyncFailed(EXPIRED.format(status=exc.status_code or 410)) from None
            except (VitalbridgeError, httpx.TransportError) as exc:
                if isinstance(exc, (SyncFailed, ValidationFailed)):
                    raise
                failures += 1
                wait = self.policy.after_failure(exc, failures)
                if wait is None:
                    raise
                self._failed("download", exc, failures, wait)
                self._wait(wait)
        self._mark_done(file_id)

    def _stream(self, file_id: str, url: str, kind: FileKind, lines_done: int, bytes_done: int) -> None:
        is_error = kind is FileKind.error
        with protocol.download(
            self.hub,
            self.conn,
            url,
            from_byte=bytes_done,
            actor=self.actor,
            correlation_id=self.correlation_id,
            bearer=self.bearer,
        ) as (resp, start):
            # With a 206 the body starts at ``bytes_done`` and line numbering continues; with a
            # 200 it is the whole file again and the first ``lines_done`` lines are skipped.
            line_no = lines_done if start else 0
            batch: list[tuple[int, EhrPatient | None]] = []  # None: a line that is not a readable Patient
            outcomes: list[dict[str, Any]] = []
            deletions: list[str] = []  # EHR ids of deleted Patients
            uncommitted = 0
            end = start
            try:
                for raw, end in lines_with_offsets(resp.iter_bytes(), start):
                    line_no += 1
                    if line_no <= lines_done:
                        continue
                    uncommitted += 1
                    if not raw.strip():
                        pass  # blank lines carry nothing (a trailing newline, say)
                    elif is_error:
                        outcomes.extend(outcome_issues(raw, line_no))
                    elif kind is FileKind.deleted:
                        try:
                            deletions.extend(deleted_patient_ids(raw))
                        except NotADeletionBundle:
                            outcomes.append({"line": line_no, "code": "invalid-deleted-bundle"})
                    else:
                        batch.append((line_no, self._map(raw)))
                    if uncommitted >= self.options.batch_size:
                        self._commit(file_id, batch, outcomes, line_no, end, deletions)
                        batch, outcomes, deletions, uncommitted = [], [], [], 0
            except LineTooLong:
                raise SyncFailed(f"a line of export file {url.rsplit('/', 1)[-1][:64]} is too long") from None
            if uncommitted:
                self._commit(file_id, batch, outcomes, line_no, end, deletions)

    def _map(self, raw: bytes) -> EhrPatient | None:
        try:
            return map_patient(raw, mrn_system=self.mrn_system)
        except ValidationFailed:
            return None

    def _commit(
        self,
        file_id: str,
        batch: list[tuple[int, EhrPatient | None]],
        outcomes: list[dict[str, Any]],
        line_no: int,
        end: int,
        deletions: list[str],
    ) -> None:
        patients = [p for _n, p in batch if p is not None]
        rejected = [n for n, p in batch if p is None]
        replaced: list[tuple[str, str]] = []
        for attempt in (1, 2):
            try:
                replaced = self._commit_once(file_id, patients, rejected, outcomes, line_no, end, deletions)
                break
            except IntegrityError:
                # A concurrent import inserted one of these patients: run the batch again (it
                # now finds and updates that patient).
                if attempt == 2:
                    raise
        for patient_id, _new in dict.fromkeys(replaced):
            relink_patient(self.hub, self.conn, patient_id, actor=self.actor)
        self.report(self.progress)

    def _commit_once(
        self,
        file_id: str,
        patients: list[EhrPatient],
        rejected: list[int],
        outcomes: list[dict[str, Any]],
        line_no: int,
        end: int,
        deletions: list[str],
    ) -> list[tuple[str, str]]:
        now = utcnow()
        with self.hub.sessions() as session, session.begin():
            f = session.get(BulkSyncFile, file_id)
            job = session.get(BulkSyncJob, self.job_id)
            practice = session.get(Practice, self.conn.id)
            assert f is not None
            assert job is not None
            assert practice is not None
            merged_away = [(p.ehr_id, p.replaced_by) for p in patients if p.replaced_by and not p.active]
            later = rekey_from_export(session, practice.id, merged_away, now=now, actor=self.actor)
            result = upsert_batch(session, practice, patients, now=now, actor=self.actor)
            result.replaced.extend(later)
            retired = retire(session, practice.id, deletions, now=now, actor=self.actor)
            job.patients_retired = (job.patients_retired or 0) + len(retired)
            read = line_no - f.lines_done
            f.lines_done = line_no
            f.bytes_done = end
            is_error_file = f.is_error
            job.patients_created += result.created
            job.patients_updated += result.updated
            if not is_error_file:
                job.lines_rejected += len(rejected)
            issues = list(job.issues or [])
            room = MAX_ISSUES - len(issues)
            if room > 0 and not is_error_file:
                issues += [{"file": f.position, "line": n, "code": "invalid-patient"} for n in rejected[:room]]
            room = MAX_ISSUES - len(issues)
            if room > 0:
                issues += [{"file": f.position, **o} for o in outcomes[:room]]
            job.issues = issues
            if result.patient_ids:
                audit.record(
                    session,
                    action="patients.bulk_imported",
                    outcome=audit.Outcome.success,
                    actor=self.actor,
                    organization_id=self.organization_id,
                    practice_id=self.conn.id,
                    resource_type="Patient",
                    resource_ids=result.patient_ids,
                    correlation_id=self.correlation_id,
                    detail={
                        "job": self.job_id,
                        "file": f.position,
                        "lines": read,
                        "created": result.created,
                        "updated": result.updated,
                        "rejected": len(rejected),
                    },
                )
        self.progress.lines += read
        self.progress.created += result.created
        self.progress.updated += result.updated
        self.progress.rejected += 0 if is_error_file else len(rejected)
        self.progress.retired += len(retired)
        return result.replaced

    def _mark_done(self, file_id: str, note: dict[str, Any] | None = None) -> None:
        with self.hub.sessions() as session, session.begin():
            f = session.get(BulkSyncFile, file_id)
            assert f is not None
            f.done = True
            if note is not None:
                job = session.get(BulkSyncJob, self.job_id)
                assert job is not None
                if len(job.issues or []) < MAX_ISSUES:
                    job.issues = [*(job.issues or []), {"file": f.position, **note}]
        self.progress.files_done += 1
        self.report(self.progress)

    def run(self) -> None:
        with self.hub.sessions() as session:
            job = session.get(BulkSyncJob, self.job_id)
            assert job is not None
            status, status_url = job.status, job.status_url
        if status is BulkSyncStatus.kicked_off:
            if status_url is None:
                status_url = self.kick_off()
            manifest = self.wait_for_manifest(status_url)
            self.store_manifest(manifest)
        self.progress.phase = "downloading"
        for file_id, url, rtype, kind in self.pending_files():
            self.import_file(file_id, url, rtype, kind)
        self.progress.phase = "done"
        self.report(self.progress)


def run(
    hub: Hub,
    job_id: str,
    options: SyncOptions,
    *,
    actor: audit.Actor | str,
    progress: ProgressFn = _noop,
    sleep: Callable[[float], None] = time.sleep,
) -> Progress:
    """Drive the job to an end: completed, or failed with a reason. Other exceptions (a crash, an
    interrupt) leave it resumable as it was after its last committed batch."""
    runner = _Runner(hub, job_id, options, actor=actor, progress=progress, sleep=sleep)
    try:
        runner.run()
    except SyncFailed as exc:
        finish(hub, job_id, BulkSyncStatus.failed, actor=actor, error=str(exc))
        raise
    except VitalbridgeError as exc:
        # Permanent EHR refusals, or transient failures that outlasted the retry budget.
        message = f"{exc.error_code}: {exc}"
        if exc.transient:
            # Worth resuming later: leave the job unfinished, say why.
            with hub.sessions() as session, session.begin():
                job = session.get(BulkSyncJob, job_id)
                assert job is not None
                job.error = message[:2000]
            raise
        finish(hub, job_id, BulkSyncStatus.failed, actor=actor, error=message[:2000])
        raise
    finish(hub, job_id, BulkSyncStatus.completed, actor=actor)
    return runner.progress
