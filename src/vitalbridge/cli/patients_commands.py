"""``vitalbridge patients import|sync|sync-status|relink``: patients from the EHR (SPEC §4, docs/patients.md).

Progress and errors go to stderr with counts and ids only, never names or other PHI.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from vitalbridge.cli.common import operator

if TYPE_CHECKING:
    from vitalbridge.patients.bulk.sync import Progress
    from vitalbridge.runtime import Hub

patients = typer.Typer(
    help="Patients from the EHR: import, sync (Bulk $export), sync-status, relink.", no_args_is_help=True
)

OrgOpt = Annotated[str, typer.Option("--org", help="Organization id or name.")]
PracticeOpt = Annotated[
    str | None, typer.Option("--practice", help="Practice id or code (optional with one practice).")
]


def _hub() -> Hub:
    from vitalbridge.cli.common import open_hub
    from vitalbridge.errors import VitalbridgeError

    try:
        return open_hub()
    except VitalbridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _practice(hub: Hub, org: str, practice: str | None) -> tuple[str, str]:
    from vitalbridge.patients.importer import resolve_practice
    from vitalbridge.tenancy import service

    with hub.sessions() as session:
        organization = service.get_organization(session, org)
        row = resolve_practice(session, organization.id, practice)
        return organization.id, row.id


@patients.command("import")
def import_cmd(
    ids: Annotated[list[str], typer.Argument(help="EHR Patient ids.")],
    org: OrgOpt,
    practice: PracticeOpt = None,
    provider: Annotated[str | None, typer.Option(help="Provider id to assign.")] = None,
    program: Annotated[str | None, typer.Option(help="Program id or code to assign.")] = None,
) -> None:
    """Import (or refresh) patients by EHR id; prints one line per patient: status, EHR id, registry id."""
    from vitalbridge.errors import VitalbridgeError
    from vitalbridge.patients.importer import import_patients

    hub = _hub()
    try:
        org_id, practice_id = _practice(hub, org, practice)
        outcome = import_patients(
            hub, org_id, practice_id, ids, provider_ref=provider, program_ref=program, actor=operator()
        )
    except VitalbridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        hub.close()
    for item in outcome.items:
        typer.echo(f"{item.status}\t{item.ecw_id}\t{item.patient_id or '-'}")
    typer.echo(f"imported {outcome.imported}, skipped {outcome.skipped}", err=True)
    if outcome.imported == 0:
        raise typer.Exit(1)


class _Reporter:
    """Progress on stderr, at most once a second (and at the end)."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if p.phase != "done" and now - self.last < 1.0:
            return
        self.last = now
        retrying = ""
        if p.retries:
            retrying = f", {p.retries} failed tries (last: {p.last_failure})"
        if p.next_try_in is not None:
            retrying += f", next try in {p.next_try_in:.0f} s"
        if p.phase == "polling":
            says = f", EHR says {p.server_progress}" if p.server_progress else ""
            line = f"waiting for the export: {p.polls} polls{says}{retrying}"
        else:
            retired = f", retired {p.retired:,}" if p.retired else ""
            line = (
                f"files {p.files_done}/{p.files_total}, lines {p.lines:,}, created {p.created:,}, "
                f"updated {p.updated:,}, rejected {p.rejected:,}{retired}, {p.rate:,.0f} patients/s{retrying}"
            )
        print(line, file=sys.stderr, flush=True)


@patients.command("sync")
def sync_cmd(
    org: OrgOpt,
    practice: PracticeOpt = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only patients changed since (ISO 8601 with time zone).")
    ] = None,
    group: Annotated[str | None, typer.Option(help="Export this Group instead of all patients.")] = None,
    min_poll_interval: Annotated[
        float, typer.Option(min=0.0, help="Never poll the export status more often than this (seconds).")
    ] = 30.0,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Patients per transaction.")] = 500,
    resume: Annotated[
        bool, typer.Option("--resume/--restart", help="Resume an unfinished sync of the practice, or abandon it.")
    ] = True,
) -> None:
    """Import the practice's patients with FHIR Bulk Data $export. Ctrl-C cancels the export."""
    from vitalbridge.errors import VitalbridgeError
    from vitalbridge.patients.bulk.jobs import SyncOptions, cancel, create_job, unfinished_job
    from vitalbridge.patients.bulk.policy import PollPolicy
    from vitalbridge.patients.bulk.sync import run
    from vitalbridge.tenancy.models import Practice

    if since is not None and since.tzinfo is None:
        typer.echo("error: --since needs a time zone, e.g. 2026-01-01T00:00:00Z", err=True)
        raise typer.Exit(2)
    actor = operator()
    options = SyncOptions(
        since=since, group=group, batch_size=batch_size, policy=PollPolicy(min_poll_interval_s=min_poll_interval)
    )
    hub = _hub()
    job_id: str | None = None
    try:
        _org_id, practice_id = _practice(hub, org, practice)
        with hub.sessions() as session:
            existing = unfinished_job(session, practice_id)
            existing_id = existing.id if existing is not None else None
            if existing is not None and resume:
                options = SyncOptions(
                    since=existing.since, group=existing.group_id, batch_size=batch_size, policy=options.policy
                )
            row = session.get(Practice, practice_id)
            assert row is not None
        if existing_id is not None and resume:
            job_id = existing_id
            typer.echo(f"resuming sync {job_id}", err=True)
        else:
            if existing_id is not None:
                cancel(hub, existing_id, actor=actor)
                typer.echo(f"abandoned unfinished sync {existing_id}", err=True)
            job_id = create_job(hub, row, options, actor=actor)
            typer.echo(f"sync {job_id} started", err=True)
        result = run(hub, job_id, options, actor=actor, progress=_Reporter())
    except KeyboardInterrupt:
        if job_id is not None:
            acknowledged = cancel(hub, job_id, actor=actor)
            typer.echo(
                f"cancelled sync {job_id}{'' if acknowledged else ' (the EHR did not confirm the DELETE)'}", err=True
            )
        hub.close()
        raise typer.Exit(130) from None
    except VitalbridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        if job_id is not None and exc.transient:
            typer.echo(f"sync {job_id}: run the same command again to resume", err=True)
        hub.close()
        raise typer.Exit(1) from None
    _report_issues(hub, job_id)
    hub.close()
    typer.echo(
        f"sync {job_id} completed: created {result.created}, updated {result.updated}, "
        f"rejected {result.rejected}, retired {result.retired}, {result.polls} status polls",
        err=True,
    )
    typer.echo(job_id)


def _report_issues(hub: Hub, job_id: str) -> None:
    from collections import Counter

    from vitalbridge.patients.models import BulkSyncJob

    with hub.sessions() as session:
        job = session.get(BulkSyncJob, job_id)
        issues = list(job.issues or []) if job is not None else []
    if not issues:
        return
    # Codes and counts only: the EHR's diagnostics may quote patient data; they stay in the database.
    counts = Counter(str(i.get("code") or "unknown") for i in issues)
    typer.echo(
        "issues: "
        + ", ".join(f"{code} x{n}" for code, n in sorted(counts.items()))
        + f" (details: vitalbridge patients sync-status {job_id})",
        err=True,
    )


@patients.command("sync-status")
def sync_status_cmd(job_id: Annotated[str, typer.Argument(help="Sync job id.")]) -> None:
    """Show a sync job: status, counters, files and issues (as JSON)."""
    import json

    from vitalbridge.patients.bulk.jobs import job_files
    from vitalbridge.patients.models import BulkSyncJob

    hub = _hub()
    try:
        with hub.sessions() as session:
            job = session.get(BulkSyncJob, job_id)
            if job is None:
                typer.echo("error: no such sync job", err=True)
                raise typer.Exit(1)
            doc = {
                "id": job.id,
                "status": job.status.value,
                "polls": job.polls,
                "patients_created": job.patients_created,
                "patients_updated": job.patients_updated,
                "lines_rejected": job.lines_rejected,
                "patients_retired": job.patients_retired or 0,
                "error": job.error,
                "files": [
                    {
                        "type": f.resource_type,
                        "lines_done": f.lines_done,
                        "done": f.done,
                        "error_file": f.is_error,
                        "deleted_file": f.is_deleted,
                    }
                    for f in job_files(session, job.id)
                ],
                "issues": job.issues,
            }
    finally:
        hub.close()
    typer.echo(json.dumps(doc, indent=2))


@patients.command("relink")
def relink_cmd(
    patient_id: Annotated[str, typer.Argument(help="Registry patient id.")],
    org: OrgOpt,
) -> None:
    """Ask the EHR for the patient's record now (follows EHR merges; marks really gone patients inactive)."""
    from vitalbridge.errors import VitalbridgeError
    from vitalbridge.patients.importer import get_patient
    from vitalbridge.patients.relink import relink_patient
    from vitalbridge.tenancy import service

    hub = _hub()
    try:
        with hub.sessions() as session:
            organization = service.get_organization(session, org)
            patient = get_patient(session, organization.id, patient_id)
            practice_id = patient.practice_id
        new_id = relink_patient(hub, practice_id, patient_id, actor=operator())
    except VitalbridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        hub.close()
    if new_id is None:
        typer.echo("the EHR has no record for this patient (or several candidates); see the audit trail", err=True)
        raise typer.Exit(1)
    typer.echo(new_id)


def register(app: typer.Typer) -> None:
    app.add_typer(patients, name="patients")
