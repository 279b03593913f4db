"""Writing and releasing outbox rows (SPEC §7): the ingest side of the delivery contract.

``route`` decides a new row's state from what is known about the patient:

* no patient (device unassigned)  → ``blocked`` / ``device_unassigned``, resource without subject
* patient without EHR id          → ``blocked`` / ``patient_unlinked``, resource without subject
* patient with EHR id             → ``pending`` with ``subject = Patient/{ehr_id}``, due now

``release_for_patient`` moves a patient's blocked rows to ``pending`` (and re-points pending
ones) once the patient has an EHR id or after it changed (EHR merge): the patient-import
feature calls it after linking. Rows already ``in_flight``, ``delivered`` or ``dead`` are never
touched here: they belong to the delivery worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.delivery.models import BlockedReason, OutboxEntry, OutboxStatus
from vitalbridge.fhir.observation import identifier_token, with_subject
from vitalbridge.fhir.validation import element_path, validate_observation
from vitalbridge.patients.models import Patient
from vitalbridge.tenancy.models import DeliveryChannel, Practice


@dataclass(frozen=True)
class Target:
    """Where a measurement's Observation goes: the patient and their practice, if known."""

    patient_id: str | None
    practice_id: str | None
    ehr_id: str | None
    channel: DeliveryChannel


UNKNOWN_TARGET = Target(None, None, None, DeliveryChannel.fhir)


def target_of(patient: Patient | None, practice: Practice | None) -> Target:
    if patient is None:
        return UNKNOWN_TARGET
    channel = practice.delivery_channel if practice is not None else DeliveryChannel.fhir
    return Target(patient.id, patient.practice_id, patient.ehr_id, channel)


def route(entry: OutboxEntry, resource: dict[str, Any], target: Target, now: datetime) -> list[str]:
    """Point ``entry`` at ``target`` and set its state; returns element-path errors (then nothing changed)."""
    if target.ehr_id:
        full = with_subject(resource, target.ehr_id)
        errors = validate_observation(full)
        if errors:
            return [f"{element_path(e.loc)}: {e.msg}" for e in errors]
        entry.resource = full
        entry.status = OutboxStatus.pending
        entry.blocked_reason = None
        entry.next_attempt_at = now
    else:
        entry.resource = {k: v for k, v in resource.items() if k != "subject"}
        entry.status = OutboxStatus.blocked
        entry.blocked_reason = BlockedReason.patient_unlinked if target.patient_id else BlockedReason.device_unassigned
        entry.next_attempt_at = None
    entry.patient_id = target.patient_id
    entry.practice_id = target.practice_id
    entry.channel = target.channel
    entry.idempotency_key = identifier_token(entry.resource)
    entry.updated_at = now
    return []


def new_entry(
    *,
    organization_id: str,
    reading_id: str,
    measurement_id: str,
    resource: dict[str, Any],
    target: Target,
    now: datetime,
) -> tuple[OutboxEntry, list[str]]:
    entry = OutboxEntry(
        organization_id=organization_id,
        reading_id=reading_id,
        measurement_id=measurement_id,
        attempts=0,
        created_at=now,
    )
    errors = route(entry, resource, target, now)
    return entry, errors


RELEASABLE = (OutboxStatus.blocked, OutboxStatus.pending)


def release_for_patient(session: Session, patient_id: str, *, actor: Actor | str, now: datetime) -> int:
    """After the patient got (or changed) its EHR id: re-point and release its undelivered rows.

    Returns how many rows changed. Rows whose resource then fails validation are dead-lettered
    with the element paths (never sent), so the caller's transaction still commits.
    """
    patient = session.get(Patient, patient_id)
    if patient is None:
        return 0
    practice = session.get(Practice, patient.practice_id)
    target = target_of(patient, practice)
    rows = session.scalars(
        select(OutboxEntry)
        .where(OutboxEntry.patient_id == patient_id, OutboxEntry.status.in_(RELEASABLE))
        .with_for_update()  # wait for a worker's claim rather than skip the row
    ).all()
    changed = 0
    for entry in rows:
        if entry.status is OutboxStatus.blocked and entry.blocked_reason is BlockedReason.device_unassigned:
            continue  # attributed by device assignment, not by linking
        before = (entry.status, entry.resource.get("subject"))
        errors = route(entry, entry.resource, target, now)
        if errors:
            entry.status = OutboxStatus.dead
            entry.last_error = "; ".join(errors)[:1000]
        if (entry.status, entry.resource.get("subject")) != before:
            changed += 1
    if changed:
        record(
            session,
            action="outbox.released",
            outcome=Outcome.success,
            actor=actor,
            organization_id=patient.organization_id,
            practice_id=patient.practice_id,
            resource_type="Patient",
            resource_ids=[patient_id],
            detail={"rows": changed, "reason": "patient_linked" if target.ehr_id else "patient_unlinked"},
        )
    return changed
