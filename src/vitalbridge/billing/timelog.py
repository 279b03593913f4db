"""The care-management time log (SPEC §13): append-only, corrected by new entries, audited.

An entry is never updated or deleted. ``correct`` appends an entry whose ``corrects_id`` names
the one it replaces; an entry can be corrected once (a unique constraint), so corrections form
a chain and the last link is what counts. A void correction has zero seconds.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.billing.episodes import _patient
from vitalbridge.billing.models import TimeEntry
from vitalbridge.billing.schemas import MAX_ENTRY_SECONDS, CorrectionIn, TimeEntryIn
from vitalbridge.errors import Conflict, FieldError, NotFound, ValidationFailed


def log_time(session: Session, organization_id: str, body: TimeEntryIn, *, actor: Actor | str) -> TimeEntry:
    patient = _patient(session, organization_id, body.patient_id)
    entry = TimeEntry(
        organization_id=organization_id,
        practice_id=patient.practice_id,
        patient_id=patient.id,
        staff=body.staff,
        credential=body.credential,
        started_at=body.started_at,
        ended_at=body.ended_at,
        seconds=body.seconds,
        activity=body.activity,
        interactive=body.interactive,
        modality=body.modality,
        note=body.note,
        created_by=str(actor),
    )
    session.add(entry)
    session.flush()
    _audit(session, "billing.time.logged", entry, actor)
    return entry


def get_entry(session: Session, organization_id: str, entry_id: str) -> TimeEntry:
    entry = session.scalar(
        select(TimeEntry).where(TimeEntry.id == entry_id, TimeEntry.organization_id == organization_id)
    )
    if entry is None:
        raise NotFound("no such time entry in this organization")
    return entry


def corrected_by(session: Session, entry_id: str) -> str | None:
    return session.scalar(select(TimeEntry.id).where(TimeEntry.corrects_id == entry_id))


def correct(
    session: Session, organization_id: str, entry_id: str, body: CorrectionIn, *, actor: Actor | str
) -> TimeEntry:
    """Append the corrected version of an entry; fields not given are carried over."""
    old = get_entry(session, organization_id, entry_id)
    if corrected_by(session, old.id) is not None:
        raise Conflict("this entry was already corrected; correct the latest correction instead")
    started_at = body.started_at or old.started_at
    ended_at: datetime | None
    if body.void:
        seconds, ended_at = 0, None
    elif body.ended_at is not None or body.minutes is not None:
        if body.ended_at is not None and body.minutes is not None:
            raise ValidationFailed(
                "give either ended_at or minutes",
                [FieldError(("body",), "give either ended_at or minutes", "exclusive")],
            )
        ended_at = body.ended_at
        seconds = (
            int((body.ended_at - started_at).total_seconds()) if body.ended_at else round((body.minutes or 0) * 60)
        )
    else:
        ended_at = old.ended_at
        seconds = int((old.ended_at - started_at).total_seconds()) if old.ended_at else old.seconds
    if not body.void and not 0 < seconds <= MAX_ENTRY_SECONDS:
        raise ValidationFailed(
            "the corrected entry's duration is out of range",
            [FieldError(("body", "ended_at"), "must be after started_at and within 12 hours of it", "duration")],
        )
    interactive = old.interactive if body.interactive is None else body.interactive
    modality = body.modality or (old.modality if interactive else None)
    if interactive and modality is None:
        raise ValidationFailed(
            "an interactive communication needs its modality",
            [FieldError(("body", "modality"), "required when interactive is true", "missing")],
        )
    entry = TimeEntry(
        organization_id=organization_id,
        practice_id=old.practice_id,
        patient_id=old.patient_id,
        staff=body.staff or old.staff,
        credential=body.credential or old.credential,
        started_at=started_at,
        ended_at=ended_at,
        seconds=seconds,
        activity=body.activity or old.activity,
        interactive=interactive,
        modality=modality,
        note=body.note,
        corrects_id=old.id,
        created_by=str(actor),
    )
    session.add(entry)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # A concurrent correction of the same entry won the unique constraint.
        raise Conflict("this entry was already corrected; correct the latest correction instead") from None
    _audit(session, "billing.time.corrected", entry, actor, corrected=old.id)
    return entry


def list_entries(
    session: Session,
    organization_id: str,
    *,
    patient_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[tuple[TimeEntry, str | None]]:
    """Entries oldest first, each with the id of the entry that corrects it (if any)."""
    q = select(TimeEntry).where(TimeEntry.organization_id == organization_id)
    if patient_id is not None:
        q = q.where(TimeEntry.patient_id == patient_id)
    if since is not None:
        q = q.where(TimeEntry.started_at >= since)
    if until is not None:
        q = q.where(TimeEntry.started_at < until)
    rows = list(
        session.scalars(
            q.order_by(TimeEntry.started_at, TimeEntry.created_at, TimeEntry.id).limit(limit).offset(offset)
        )
    )
    ids = [r.id for r in rows]
    by: dict[str, str] = {}
    if ids:
        by = {
            c: i
            for i, c in session.execute(
                select(TimeEntry.id, TimeEntry.corrects_id).where(TimeEntry.corrects_id.in_(ids))
            )
            if c is not None
        }
    return [(r, by.get(r.id)) for r in rows]


def _audit(
    session: Session, action: str, entry: TimeEntry, actor: Actor | str, *, corrected: str | None = None
) -> None:
    ids = [entry.id, entry.patient_id] + ([corrected] if corrected else [])
    record(
        session,
        action=action,
        outcome=Outcome.success,
        actor=actor,
        organization_id=entry.organization_id,
        practice_id=entry.practice_id,
        resource_type="BillingTimeEntry",
        resource_ids=ids,
        detail={"seconds": entry.seconds, "credential": entry.credential.value, "interactive": entry.interactive},
    )
