"""Folding one local patient into another (SPEC §4 "Merged patients"; HL7 A40; FHIR ``replaced-by``).

``merge_patients`` does what the registry itself owns — status, ``merged_into_id``, aliases for the
old EHR id and identifiers — and then runs every registered merge step in the same transaction.
Features that keep rows per patient (devices, readings, alerts, pending deliveries) register a step
that moves their rows to the survivor::

    from vitalbridge.patients.merge import register_merge_step

    def move_devices(session, from_patient, into_patient):
        session.execute(update(Device).where(Device.patient_id == from_patient.id).values(patient_id=into_patient.id))

    register_merge_step("devices", move_devices)

A step must be idempotent and must not commit: the caller's transaction commits or rolls back the
whole merge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vitalbridge import audit
from vitalbridge.errors import Conflict
from vitalbridge.patients.models import Patient, PatientEhrAlias, PatientStatus

MergeStep = Callable[[Session, Patient, Patient], None]

_STEPS: list[tuple[str, MergeStep]] = []


def register_merge_step(name: str, step: MergeStep) -> None:
    """Run ``step(session, from_patient, into_patient)`` on every merge (once per name)."""
    if name not in {n for n, _ in _STEPS}:
        _STEPS.append((name, step))


def unregister_merge_step(name: str) -> None:
    _STEPS[:] = [(n, s) for n, s in _STEPS if n != name]


def merge_steps() -> list[str]:
    return [n for n, _ in _STEPS]


def _identifier_key(entry: dict[str, Any]) -> tuple[str, str, str]:
    return (str(entry.get("type", "")), str(entry.get("system", "")), str(entry.get("value", "")))


def merge_patients(
    session: Session,
    from_patient: Patient,
    into_patient: Patient,
    reason: str,
    *,
    actor: audit.Actor | str = "service:patients",
) -> bool:
    """Fold ``from_patient`` into ``into_patient``. Returns False when it was already done.

    ``reason`` is a short code for the audit trail (e.g. ``hl7.A40``, ``fhir.replaced-by``), not free text.
    """
    if from_patient.id == into_patient.id:
        return False
    if from_patient.practice_id != into_patient.practice_id:
        raise Conflict("patients of different practices cannot be merged")
    if into_patient.status is PatientStatus.merged:
        raise Conflict("the surviving patient has itself been merged into another patient")
    if from_patient.status is PatientStatus.merged:
        if from_patient.merged_into_id == into_patient.id:
            return False
        raise Conflict("the prior patient was already merged into a different patient")

    from_patient.status = PatientStatus.merged
    from_patient.merged_into_id = into_patient.id
    # Patients merged into the prior one earlier now point straight at the survivor.
    session.execute(
        update(Patient).where(Patient.merged_into_id == from_patient.id).values(merged_into_id=into_patient.id)
    )
    session.execute(
        update(PatientEhrAlias).where(PatientEhrAlias.patient_id == from_patient.id).values(patient_id=into_patient.id)
    )
    if from_patient.ehr_id:
        existing = session.scalar(
            select(PatientEhrAlias).where(
                PatientEhrAlias.practice_id == from_patient.practice_id, PatientEhrAlias.ehr_id == from_patient.ehr_id
            )
        )
        if existing is None:
            session.add(
                PatientEhrAlias(
                    patient_id=into_patient.id, practice_id=into_patient.practice_id, ehr_id=from_patient.ehr_id
                )
            )
        else:
            existing.patient_id = into_patient.id

    # The prior patient's identifiers stay findable on the survivor, marked as no longer in use
    # (FHIR Identifier.use "old").
    known = {_identifier_key(e) for e in into_patient.identifiers or []}
    carried = list(into_patient.identifiers or [])
    prior_ids = list(from_patient.identifiers or [])
    if from_patient.mrn and not any(e.get("value") == from_patient.mrn for e in prior_ids):
        prior_ids.append({"value": from_patient.mrn, "type": "MR", "system": from_patient.mrn_system or ""})
    for entry in prior_ids:
        if _identifier_key(entry) not in known:
            carried.append({**entry, "use": "old"})
            known.add(_identifier_key(entry))
    into_patient.identifiers = carried

    for _name, step in _STEPS:
        step(session, from_patient, into_patient)
    session.flush()
    audit.record(
        session,
        action="patient.merged",
        outcome=audit.Outcome.success,
        actor=actor,
        organization_id=into_patient.organization_id,
        practice_id=into_patient.practice_id,
        resource_type="Patient",
        resource_ids=[from_patient.id, into_patient.id],
        detail={"reason": reason, "steps": merge_steps()},
    )
    return True
