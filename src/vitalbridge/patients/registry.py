"""Writing EHR patients into the registry (SPEC §4): one patient per (practice, EHR id), ever.

``upsert`` (one patient, API import) and ``upsert_batch`` (Bulk export lines) both

1. find the local patient by its EHR id — or by an old EHR id kept as a ``PatientEhrAlias``;
2. else adopt a patient the hub already knows by MRN but not yet by EHR id (an HL7 ADT feed
   announces patients before anyone imports them) and release its held deliveries;
3. else create it.

The unique constraint ``(practice_id, ehr_id)`` is the final word: two imports racing for the
same new patient both try to insert, one wins, and the loser's savepoint rolls back and it
updates the winner's row instead. Nothing here commits; callers own the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vitalbridge.audit import Actor
from vitalbridge.delivery.outbox import release_for_patient
from vitalbridge.patients.fhir_mapping import EhrPatient
from vitalbridge.patients.models import Patient, PatientEhrAlias, PatientStatus
from vitalbridge.tenancy.models import Practice

# Status reasons (``Patient.status_reason``) this feature sets; codes, never free text.
REASON_EHR_GONE = "ehr_gone"  # the EHR has no record and no replacement could be found
REASON_EHR_INACTIVE = "ehr_inactive"  # the EHR marks the record inactive (and names no replacement)
EHR_REASONS = (REASON_EHR_GONE, REASON_EHR_INACTIVE)


@dataclass(frozen=True)
class Upserted:
    patient: Patient
    created: bool
    linked: bool  # an existing patient got its first EHR id (deliveries were released)


def _identifier_key(entry: dict[str, Any]) -> tuple[str, str]:
    return (str(entry.get("system", "")), str(entry.get("value", "")))


def apply_ehr(patient: Patient, ehr: EhrPatient, now: datetime) -> None:
    """Refresh demographics from the EHR (the EHR is the source of truth for them)."""
    patient.given_name = ehr.given_name
    patient.family_name = ehr.family_name
    patient.birth_date = ehr.birth_date
    patient.gender = ehr.gender
    patient.phone = ehr.phone
    patient.address = ehr.address
    if ehr.mrn:
        patient.mrn = ehr.mrn
        patient.mrn_system = ehr.mrn_system
    fresh = {_identifier_key(e) for e in ehr.identifiers}
    # Identifiers from elsewhere (an ADT feed, an earlier merge) stay, after the EHR's own.
    patient.identifiers = list(ehr.identifiers) + [
        e for e in patient.identifiers or [] if _identifier_key(e) not in fresh
    ]
    patient.ehr_synced_at = now
    if patient.status is PatientStatus.inactive and patient.status_reason in EHR_REASONS and ehr.active:
        # The EHR has the patient (again): the hub's own "gone" verdict no longer holds.
        patient.status = PatientStatus.active
        patient.status_reason = None


def find_by_ehr_id(session: Session, practice_id: str, ehr_id: str) -> Patient | None:
    """The patient with this EHR id, or the one that had it before an EHR merge."""
    patient = session.scalar(select(Patient).where(Patient.practice_id == practice_id, Patient.ehr_id == ehr_id))
    if patient is not None:
        return patient
    alias = session.scalar(
        select(PatientEhrAlias).where(PatientEhrAlias.practice_id == practice_id, PatientEhrAlias.ehr_id == ehr_id)
    )
    return session.get(Patient, alias.patient_id) if alias is not None else None


def _unlinked_by_mrn(session: Session, practice_id: str, mrn: str | None) -> Patient | None:
    if not mrn:
        return None
    matches = session.scalars(
        select(Patient).where(
            Patient.practice_id == practice_id,
            Patient.mrn == mrn,
            Patient.ehr_id.is_(None),
            Patient.status != PatientStatus.merged,
        )
    ).all()
    # Two unlinked patients with one MRN: the registry cannot tell which is meant, so neither.
    return matches[0] if len(matches) == 1 else None


def _new_patient(practice: Practice, ehr: EhrPatient, program_id: str | None, provider_id: str | None) -> Patient:
    return Patient(
        organization_id=practice.organization_id,
        practice_id=practice.id,
        ehr_id=ehr.ehr_id,
        identifiers=[],
        status=PatientStatus.active,
        program_id=program_id,
        provider_id=provider_id,
    )


def upsert(
    session: Session,
    practice: Practice,
    ehr: EhrPatient,
    *,
    now: datetime,
    actor: Actor | str,
    program_id: str | None = None,
    provider_id: str | None = None,
) -> Upserted:
    """Create or refresh the patient for ``ehr``. A given program/provider replaces the current one."""
    patient = find_by_ehr_id(session, practice.id, ehr.ehr_id)
    created = linked = False
    if patient is None:
        patient = _unlinked_by_mrn(session, practice.id, ehr.mrn)
        if patient is not None:
            patient.ehr_id = ehr.ehr_id
            linked = True
    if patient is None:
        candidate = _new_patient(practice, ehr, program_id, provider_id)
        apply_ehr(candidate, ehr, now)
        try:
            with session.begin_nested():
                session.add(candidate)
                session.flush()
            patient, created = candidate, True
        except IntegrityError:
            # Another import created it between our look-up and insert: refresh theirs.
            patient = find_by_ehr_id(session, practice.id, ehr.ehr_id)
            if patient is None:  # pragma: no cover - the constraint said it exists
                raise
    if not created:
        apply_ehr(patient, ehr, now)
    if program_id is not None:
        patient.program_id = program_id
    if provider_id is not None:
        patient.provider_id = provider_id
    session.flush()
    if linked:
        release_for_patient(session, patient.id, actor=actor, now=now)
    return Upserted(patient, created, linked)


@dataclass
class BatchResult:
    created: int = 0
    updated: int = 0
    skipped: int = 0  # merged-away records of patients the hub never knew
    patient_ids: list[str] = field(default_factory=list)
    # (local patient id, the EHR id that replaced its current one): re-link after the batch.
    replaced: list[tuple[str, str]] = field(default_factory=list)


def upsert_batch(
    session: Session, practice: Practice, batch: Sequence[EhrPatient], *, now: datetime, actor: Actor | str
) -> BatchResult:
    """Upsert many patients with three look-up queries per batch instead of three per patient.

    New patients are inserted in one flush; if a concurrent import inserted one of them first the
    flush raises ``IntegrityError`` and the caller rolls back and runs the batch again (it then
    finds that patient and updates it).
    """
    result = BatchResult()
    ids = list(dict.fromkeys(p.ehr_id for p in batch))
    known = {
        p.ehr_id: p
        for p in session.scalars(select(Patient).where(Patient.practice_id == practice.id, Patient.ehr_id.in_(ids)))
    }
    aliases = {
        a.ehr_id
        for a in session.scalars(
            select(PatientEhrAlias).where(PatientEhrAlias.practice_id == practice.id, PatientEhrAlias.ehr_id.in_(ids))
        )
    }
    mrns = [p.mrn for p in batch if p.mrn and p.ehr_id not in known]
    unlinked: dict[str, list[Patient]] = {}
    if mrns:
        for p in session.scalars(
            select(Patient).where(
                Patient.practice_id == practice.id,
                Patient.ehr_id.is_(None),
                Patient.mrn.in_(list(dict.fromkeys(mrns))),
                Patient.status != PatientStatus.merged,
            )
        ):
            unlinked.setdefault(p.mrn or "", []).append(p)
    linked: list[str] = []
    touched: list[Patient] = []
    for ehr in batch:
        patient = known.get(ehr.ehr_id)
        if patient is None and ehr.ehr_id in aliases:
            # An old id of a patient already re-linked: the record that replaced it comes (or came) too.
            result.skipped += 1
            continue
        if ehr.replaced_by and not ehr.active:
            if patient is not None and ehr.replaced_by != patient.ehr_id:
                result.replaced.append((patient.id, ehr.replaced_by))
            else:
                result.skipped += 1
            continue
        if patient is None:
            candidates = unlinked.pop(ehr.mrn or "", []) if ehr.mrn else []
            if len(candidates) == 1:
                patient = candidates[0]
                patient.ehr_id = ehr.ehr_id
                linked.append(patient.id)
                result.updated += 1
            else:
                patient = _new_patient(practice, ehr, None, None)
                session.add(patient)
                result.created += 1
            known[ehr.ehr_id] = patient
        else:
            result.updated += 1
        apply_ehr(patient, ehr, now)
        touched.append(patient)
    session.flush()
    result.patient_ids.extend(dict.fromkeys(p.id for p in touched))
    for patient_id in linked:
        release_for_patient(session, patient_id, actor=actor, now=now)
    return result
