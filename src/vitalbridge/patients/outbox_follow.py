"""Undelivered Observations follow their patient's EHR id (SPEC §4 "pending deliveries follow the
new id"; outbox state machine in docs/architecture-readings.md).

``follow_outbox`` re-points a patient's rows that are not delivered yet — held, pending, claimed
by a worker whose lease expired, and dead letters the EHR refused for their old subject — and
makes them ``pending``. ``gone`` dead-letters them with a clear reason when the patient has no
EHR record any more. A merge step moves a merged-away patient's rows to the survivor.
Everything runs in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge import audit
from vitalbridge.db.base import utcnow
from vitalbridge.delivery.models import BlockedReason, OutboxEntry, OutboxStatus
from vitalbridge.delivery.outbox import route, target_of
from vitalbridge.patients.merge import register_merge_step
from vitalbridge.patients.models import Patient, PatientStatus
from vitalbridge.patients.registry import REASON_EHR_GONE
from vitalbridge.tenancy.models import Practice

SERVICE = audit.Actor.service("patients")
# The dead-letter reason the delivery worker records when the EHR refuses an Observation's subject.
PATIENT_NOT_FOUND = "patient_not_found"
# What a row dead-lettered because its patient is gone says (codes first, then a hint; no PHI).
PATIENT_GONE_ERROR = (
    "patient_gone: the EHR no longer has this patient (merged away or deleted) and no replacement was found "
    "by MRN or identifier; re-import the patient, then replay"
)


def _subject_id(entry: OutboxEntry) -> str | None:
    subject = (entry.resource or {}).get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if isinstance(reference, str) and reference.startswith("Patient/"):
        return reference.split("/", 1)[1]
    return None


def _refused_for_subject(entry: OutboxEntry) -> bool:
    """A dead letter caused by the EHR not knowing the subject (not by a bad value)."""
    # ``dead_reason`` is the delivery worker's column (its branch); read it when it exists.
    if getattr(entry, "dead_reason", None) == PATIENT_NOT_FOUND:
        return True
    return entry.last_status_code in (404, 410) or PATIENT_NOT_FOUND in (entry.last_error or "")


def _followable(entry: OutboxEntry, now: datetime) -> bool:
    if entry.status is OutboxStatus.blocked:
        return entry.blocked_reason is BlockedReason.patient_unlinked
    if entry.status is OutboxStatus.pending:
        return True
    if entry.status is OutboxStatus.in_flight:
        # A live lease belongs to a worker; if its send fails for the old subject, the delivery
        # path calls the re-link hook again and the row comes back here as a dead letter.
        return entry.lease_expires_at is None or entry.lease_expires_at <= now
    if entry.status is OutboxStatus.dead:
        return _refused_for_subject(entry)
    return False


def follow_outbox(session: Session, patient: Patient, *, now: datetime, actor: audit.Actor | str) -> int:
    """Point the patient's undelivered rows at its current EHR id; returns how many changed.

    Rows: ``blocked`` (patient unlinked), ``pending``, ``in_flight`` whose lease expired, and
    ``dead`` ones the EHR refused for their subject — when that subject is not the current id.
    Each becomes ``pending`` with the new ``subject`` (re-validated by ``delivery.outbox.route``).
    """
    if not patient.ehr_id:
        return 0
    practice = session.get(Practice, patient.practice_id)
    target = target_of(patient, practice)
    rows = _undelivered_rows(session, patient.id)
    changed = 0
    revived = 0
    for entry in rows:
        if not _followable(entry, now):
            continue
        if entry.status is OutboxStatus.dead and _subject_id(entry) == patient.ehr_id:
            continue  # refused for the current id: reviving it would only fail again
        before = (entry.status, _subject_id(entry))
        was_dead = entry.status is OutboxStatus.dead
        errors = route(entry, entry.resource, target, now)
        if errors:
            entry.status = OutboxStatus.dead
            entry.last_error = "; ".join(errors)[:1000]
            continue
        entry.lease_owner = None
        entry.lease_expires_at = None
        if was_dead:
            entry.last_error = None
            entry.last_status_code = None
            if hasattr(entry, "dead_reason"):  # the delivery worker's column, once merged
                setattr(entry, "dead_reason", None)  # noqa: B010 - absent on this branch's model
            revived += 1
        if (entry.status, _subject_id(entry)) != before:
            changed += 1
    if changed:
        audit.record(
            session,
            action="outbox.relinked",
            outcome=audit.Outcome.success,
            actor=actor,
            organization_id=patient.organization_id,
            practice_id=patient.practice_id,
            resource_type="Patient",
            resource_ids=[patient.id],
            detail={"rows": changed, "revived_dead_letters": revived},
        )
    return changed


def _outbox_merge_step(session: Session, from_patient: Patient, into_patient: Patient) -> None:
    """Merge step: the prior patient's undelivered rows move to the survivor and its EHR id."""
    session.flush()
    rows = session.scalars(
        select(OutboxEntry)
        .where(
            OutboxEntry.patient_id == from_patient.id,
            OutboxEntry.status.in_(
                (OutboxStatus.blocked, OutboxStatus.pending, OutboxStatus.in_flight, OutboxStatus.dead)
            ),
        )
        .with_for_update()
    ).all()
    for entry in rows:
        entry.patient_id = into_patient.id
    session.flush()
    follow_outbox(session, into_patient, now=utcnow(), actor=SERVICE)


register_merge_step("outbox", _outbox_merge_step)


def gone(session: Session, patient: Patient, *, now: datetime, actor: audit.Actor | str) -> int:
    """Mark the patient inactive (``ehr_gone``) and dead-letter its undeliverable rows."""
    patient.status = PatientStatus.inactive
    patient.status_reason = REASON_EHR_GONE
    rows = _undelivered_rows(session, patient.id)
    dead = 0
    for entry in rows:
        if not _followable(entry, now):
            continue
        entry.status = OutboxStatus.dead
        entry.blocked_reason = None
        entry.lease_owner = None
        entry.lease_expires_at = None
        entry.last_error = PATIENT_GONE_ERROR
        entry.updated_at = now
        dead += 1
    audit.record(
        session,
        action="patient.ehr_gone",
        outcome=audit.Outcome.failure,
        actor=actor,
        organization_id=patient.organization_id,
        practice_id=patient.practice_id,
        resource_type="Patient",
        resource_ids=[patient.id],
        detail={"dead_lettered": dead, "reason": REASON_EHR_GONE},
    )
    return dead


def _undelivered_rows(session: Session, patient_id: str) -> Sequence[OutboxEntry]:
    """The patient's rows not yet delivered, locked: both a re-link and a give-up rewrite them."""
    return session.scalars(
        select(OutboxEntry)
        .where(
            OutboxEntry.patient_id == patient_id,
            OutboxEntry.status.in_(
                (OutboxStatus.blocked, OutboxStatus.pending, OutboxStatus.in_flight, OutboxStatus.dead)
            ),
        )
        .with_for_update()
    ).all()
