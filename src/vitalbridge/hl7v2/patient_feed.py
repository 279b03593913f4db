"""Domain mapping, write side: ADT demographics → the patient registry (SPEC §4 HL7 v2 bullet).

A patient is found by its MRN within the practice the sending facility maps to. A01/A04/A08/A31
create or update it; A40 folds the MRG-1 patient into the PID-3 patient through
``patients.merge.merge_patients``. Everything runs in the caller's transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.hl7v2.adt import KEEP, Demographics, Identifier, Merge
from vitalbridge.hl7v2.codes import ErrorCode
from vitalbridge.hl7v2.errors import ErrorLocation, invalid
from vitalbridge.patients.merge import merge_patients
from vitalbridge.patients.models import Patient, PatientStatus
from vitalbridge.tenancy.models import Practice

MERGE_REASON = "hl7.A40"


def _by_mrn(session: Session, practice_id: str, mrn: str) -> list[Patient]:
    return list(
        session.scalars(
            select(Patient).where(Patient.practice_id == practice_id, Patient.mrn == mrn).order_by(Patient.created_at)
        )
    )


def _key(entry: dict[str, Any]) -> tuple[str, str, str]:
    return (str(entry.get("type", "")), str(entry.get("system", "")), str(entry.get("value", "")))


def _current(session: Session, practice: Practice, mrn: Identifier, location: ErrorLocation) -> Patient | None:
    """The one active patient with this MRN; a merged-away MRN or an ambiguous one is an AE."""
    matches = _by_mrn(session, practice.id, mrn.value)
    active = [p for p in matches if p.status is not PatientStatus.merged]
    if len(active) > 1:
        raise invalid(
            "more than one registry patient has this medical record number; resolve the duplicate first",
            ErrorCode.duplicate_key,
            location,
        )
    if not active and matches:
        raise invalid(
            "this medical record number belongs to a patient that was merged; send the surviving patient's identifier",
            ErrorCode.unknown_key,
            location,
        )
    return active[0] if active else None


def apply_demographics(patient: Patient, demo: Demographics) -> None:
    """Write what PID sent; fields that were not sent keep their stored values."""
    fresh = [i.as_json() for i in demo.identifiers]
    seen = {_key(e) for e in fresh}
    # Identifiers the EHR stopped sending (or that another import added) are kept, not dropped.
    patient.identifiers = fresh + [e for e in patient.identifiers or [] if _key(e) not in seen]
    patient.mrn = demo.mrn.value
    patient.mrn_system = demo.mrn.authority or None
    if demo.family_name is not KEEP:
        patient.family_name = demo.family_name
    if demo.given_name is not KEEP:
        patient.given_name = demo.given_name
    if demo.birth_date is not KEEP:
        patient.birth_date = demo.birth_date
    if demo.gender is not KEEP:
        patient.gender = demo.gender
    if demo.address is not KEEP:
        patient.address = demo.address
    if demo.phone is not KEEP:
        patient.phone = demo.phone


def upsert_patient(session: Session, practice: Practice, demo: Demographics, sequence: int = 1) -> tuple[Patient, bool]:
    """Create or update the patient PID describes. Returns the patient and whether it is new."""
    patient = _current(session, practice, demo.mrn, ErrorLocation("PID", sequence, 3))
    created = patient is None
    if patient is None:
        patient = Patient(organization_id=practice.organization_id, practice_id=practice.id, identifiers=[])
        session.add(patient)
    apply_demographics(patient, demo)
    session.flush()
    return patient, created


def apply_merge(session: Session, practice: Practice, merge: Merge, sequence: int = 1) -> Patient:
    """A40: the patient known by MRG-1 becomes part of the patient known by PID-3. Returns the survivor."""
    prior_matches = _by_mrn(session, practice.id, merge.prior_mrn.value)
    survivor = _current(session, practice, merge.survivor.mrn, ErrorLocation("PID", sequence, 3))
    prior_active = [p for p in prior_matches if p.status is not PatientStatus.merged]
    if len(prior_active) > 1:
        raise invalid(
            "more than one registry patient has the prior medical record number; resolve the duplicate first",
            ErrorCode.duplicate_key,
            ErrorLocation("MRG", sequence, 1),
        )
    prior = prior_active[0] if prior_active else None

    if prior is not None and survivor is None:
        # The hub never knew the surviving record: the prior patient simply takes its identity.
        # The old MRN stays on it as an identifier no longer in use.
        old = {"value": merge.prior_mrn.value, "type": merge.prior_mrn.type_code, "system": merge.prior_mrn.authority}
        apply_demographics(prior, merge.survivor)
        prior.identifiers = [
            {**e, "use": "old"} if _key(e) == _key(old) and not e.get("use") else e for e in prior.identifiers
        ]
        if _key(old) not in {_key(e) for e in prior.identifiers}:
            prior.identifiers = [*prior.identifiers, {**old, "use": "old"}]
        session.flush()
        return prior

    survivor, _created = upsert_patient(session, practice, merge.survivor, sequence)
    if prior is not None and prior.id != survivor.id:
        merge_patients(session, prior, survivor, MERGE_REASON, actor="service:hl7")
    return survivor
