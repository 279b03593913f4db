"""Re-linking a patient whose EHR record was merged away (SPEC §4 "Merged patients"; FHIR R4
``Patient.link``).

When the EHR answers 404/410 for a linked patient's id, or returns the Patient with
``link[type=replaced-by]`` (usually with ``active: false``) — on a read, an import, a bulk sync or
a delivery — ``relink_patient`` re-resolves it:

1. follow ``replaced-by`` if the EHR names the successor (a few hops at most);
2. else search the EHR by the patient's MRN, then its other current identifiers, and accept
   exactly one active record that is not the old one (two candidates: ambiguous, no guess);
3. re-link: the old id becomes a ``PatientEhrAlias``, demographics are refreshed from the new
   record, and undelivered outbox rows follow the new id (``follow_outbox``). If another local
   patient already holds the new id, the two local patients are merged (``patients.merge``).
4. nothing found: the patient is really gone. It is marked ``inactive`` (reason ``ehr_gone``)
   and its undelivered rows are dead-lettered with a reason that says so.

An EHR that does not offer Patient read or search (``EhrUnsupported``: 405, ``not-supported``, a
404 on the search URL, or its CapabilityStatement) changes nothing: the patient is not marked
gone, the error is raised as the configuration problem it is (``patient.relink_unsupported``).

Every outcome is audited (``patient.relinked``, ``patient.ehr_gone``, ``patient.relink_ambiguous``).
EHR calls happen before the database transaction opens, never inside it.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge import audit
from vitalbridge.db.base import utcnow
from vitalbridge.delivery.models import OutboxEntry
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.errors import EhrNotFound, EhrUnsupported, NotFound, ValidationFailed
from vitalbridge.patients.ehr_reads import FHIR_ID, read_patient, search_patients
from vitalbridge.patients.fhir_mapping import EhrPatient
from vitalbridge.patients.merge import merge_patients
from vitalbridge.patients.models import Patient, PatientEhrAlias, PatientStatus
from vitalbridge.patients.outbox_follow import SERVICE, follow_outbox, gone
from vitalbridge.patients.registry import REASON_EHR_GONE, apply_ehr
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Practice

log = logging.getLogger(__name__)

MAX_HOPS = 5


class How(enum.StrEnum):
    """How a patient's current EHR record was found (audit ``detail.how``)."""

    current = "current"  # the EHR id still stands
    replaced_by = "replaced-by"  # the EHR named the successor (Patient.link)
    identifier = "identifier"  # found by MRN / identifier search
    gone = "gone"  # nothing found
    ambiguous = "ambiguous"  # several active candidates: no guess


@dataclass(frozen=True)
class Snapshot:
    """What resolving needs of the local patient, read in a short transaction."""

    patient_id: str
    organization_id: str
    ehr_id: str | None
    mrn: str | None
    mrn_system: str | None
    identifiers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Resolved:
    how: How
    ehr: EhrPatient | None  # the record now standing for the patient (None when gone/ambiguous)
    candidates: int = 0


def apply_relink(
    session: Session,
    patient: Patient,
    ehr: EhrPatient,
    *,
    how: How | str,
    now: datetime,
    actor: audit.Actor | str,
) -> Patient:
    """Link ``patient`` to ``ehr.ehr_id`` (pure database work). Returns the surviving local patient."""
    old = patient.ehr_id
    new = ehr.ehr_id
    holder = session.scalar(select(Patient).where(Patient.practice_id == patient.practice_id, Patient.ehr_id == new))
    if holder is not None and holder.id != patient.id:
        # The successor is already a registry patient: fold this one into it (moves aliases,
        # identifiers and, through the outbox merge step, pending deliveries).
        merge_patients(session, patient, holder, f"fhir.{How(how).value}", actor=actor)
        apply_ehr(holder, ehr, now)
        session.flush()
        survivor = holder
    else:
        if old and old != new:
            alias = session.scalar(
                select(PatientEhrAlias).where(
                    PatientEhrAlias.practice_id == patient.practice_id, PatientEhrAlias.ehr_id == old
                )
            )
            if alias is None:
                session.add(PatientEhrAlias(patient_id=patient.id, practice_id=patient.practice_id, ehr_id=old))
            else:
                alias.patient_id = patient.id
        patient.ehr_id = new
        apply_ehr(patient, ehr, now)
        if patient.status is PatientStatus.inactive and patient.status_reason == REASON_EHR_GONE:
            patient.status = PatientStatus.active
            patient.status_reason = None
        session.flush()
        survivor = patient
    rows = follow_outbox(session, survivor, now=now, actor=actor)
    audit.record(
        session,
        action="patient.relinked",
        outcome=audit.Outcome.success,
        actor=actor,
        organization_id=survivor.organization_id,
        practice_id=survivor.practice_id,
        resource_type="Patient",
        resource_ids=list(dict.fromkeys([patient.id, survivor.id])),
        detail={"how": str(how), "old_ehr_id": old, "new_ehr_id": new, "outbox_rows": rows},
    )
    return survivor


def rekey_from_export(
    session: Session,
    practice_id: str,
    replaced: list[tuple[str, str]],
    *,
    now: datetime,
    actor: audit.Actor | str,
) -> list[tuple[str, str]]:
    """Bulk export lines that say "old id replaced-by new id": re-link the registry patient on the
    old id straight away (the export carries the successor too, so no EHR call is needed), before
    the successor's line is upserted — it then refreshes this patient instead of creating one.

    Returns the (patient id, new id) pairs left for ``relink_patient``: those whose successor is
    already another registry patient (a merge of two local patients, decided with the EHR).
    """
    later: list[tuple[str, str]] = []
    for old, new in replaced:
        patient = session.scalar(select(Patient).where(Patient.practice_id == practice_id, Patient.ehr_id == old))
        if patient is None or old == new or not FHIR_ID.match(new):
            continue
        holder = session.scalar(select(Patient).where(Patient.practice_id == practice_id, Patient.ehr_id == new))
        if holder is not None:
            later.append((patient.id, new))
            continue
        exists = session.scalar(
            select(PatientEhrAlias).where(PatientEhrAlias.practice_id == practice_id, PatientEhrAlias.ehr_id == old)
        )
        if exists is None:
            session.add(PatientEhrAlias(patient_id=patient.id, practice_id=practice_id, ehr_id=old))
        patient.ehr_id = new
        session.flush()
        rows = follow_outbox(session, patient, now=now, actor=actor)
        audit.record(
            session,
            action="patient.relinked",
            outcome=audit.Outcome.success,
            actor=actor,
            organization_id=patient.organization_id,
            practice_id=patient.practice_id,
            resource_type="Patient",
            resource_ids=[patient.id],
            detail={"how": "bulk-export.replaced-by", "old_ehr_id": old, "new_ehr_id": new, "outbox_rows": rows},
        )
    return later


def _snapshot(session: Session, patient: Patient) -> Snapshot:
    idents = tuple(
        (str(e.get("system") or ""), str(e.get("value")))
        for e in patient.identifiers or []
        if e.get("value") and e.get("use") != "old"
    )
    return Snapshot(patient.id, patient.organization_id, patient.ehr_id, patient.mrn, patient.mrn_system, idents)


def _follow_chain(
    hub: Hub, conn: PracticeConnection, start: EhrPatient, mrn_system: str | None, actor: audit.Actor | str
) -> EhrPatient | None:
    current = start
    seen = {start.ehr_id}
    for _ in range(MAX_HOPS):
        if not current.replaced_by or current.replaced_by in seen or not FHIR_ID.match(current.replaced_by):
            break
        seen.add(current.replaced_by)
        try:
            current = read_patient(hub, conn, current.replaced_by, mrn_system=mrn_system, actor=actor)
        except (EhrNotFound, ValidationFailed):
            return None
    return current if current.ehr_id != start.ehr_id and current.active and not current.replaced_by else None


def _search_identifiers(
    hub: Hub, conn: PracticeConnection, snap: Snapshot, mrn_system: str | None, actor: audit.Actor | str
) -> Resolved:
    tokens: list[str] = []
    if snap.mrn:
        tokens.append(f"{snap.mrn_system}|{snap.mrn}" if snap.mrn_system else snap.mrn)
    for system, value in snap.identifiers:
        token = f"{system}|{value}" if system else value
        if token not in tokens:
            tokens.append(token)
    for token in tokens:
        found = search_patients(hub, conn, {"identifier": token}, count=10, mrn_system=mrn_system, actor=actor)
        live = [p for p in found.patients if p.ehr_id != snap.ehr_id and p.active and not p.replaced_by]
        if len(live) == 1:
            return Resolved(How.identifier, live[0], 1)
        if len(live) > 1:
            return Resolved(How.ambiguous, None, len(live))
    return Resolved(How.gone, None)


def resolve(
    hub: Hub, conn: PracticeConnection, snap: Snapshot, mrn_system: str | None, actor: audit.Actor | str
) -> Resolved:
    """Ask the EHR what the patient's record is now (EHR calls only, no database)."""
    if snap.ehr_id and FHIR_ID.match(snap.ehr_id):
        try:
            ehr = read_patient(hub, conn, snap.ehr_id, mrn_system=mrn_system, actor=actor)
        except EhrNotFound:
            ehr = None
        if ehr is not None:
            if ehr.replaced_by:
                successor = _follow_chain(hub, conn, ehr, mrn_system, actor)
                if successor is not None:
                    return Resolved(How.replaced_by, successor, 1)
            elif ehr.active:
                return Resolved(How.current, ehr, 1)
            else:
                # Inactive without a successor: perhaps a new chart was opened; look, else keep it.
                found = _search_identifiers(hub, conn, snap, mrn_system, actor)
                return found if found.ehr is not None else Resolved(How.current, ehr, 1)
    return _search_identifiers(hub, conn, snap, mrn_system, actor)


def _load(session: Session, practice_ref: Practice | PracticeConnection | str, patient_ref: Patient | str) -> Patient:
    patient_id = patient_ref if isinstance(patient_ref, str) else patient_ref.id
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("no such patient")
    practice_id = practice_ref if isinstance(practice_ref, str) else practice_ref.id
    if patient.practice_id != practice_id:
        raise NotFound("no such patient in this practice")
    # A patient folded into another is represented by its survivor.
    hops = 0
    while patient.status is PatientStatus.merged and patient.merged_into_id and hops < MAX_HOPS:
        survivor = session.get(Patient, patient.merged_into_id)
        if survivor is None:
            break
        patient, hops = survivor, hops + 1
    return patient


def relink_patient(
    hub: Hub,
    practice: Practice | PracticeConnection | str,
    patient: Patient | str,
    *,
    actor: audit.Actor | str = SERVICE,
) -> str | None:
    """Re-resolve ``patient`` at its practice's EHR. Returns its (possibly new) EHR id, or None when
    the EHR has no record for it any more (then it is inactive, deliveries dead) or the match is
    ambiguous (then nothing changes and the audit entry says so).

    Safe to call from any thread with no transaction open; idempotent.
    """
    with hub.sessions() as session:
        local = _load(session, practice, patient)
        snap = _snapshot(session, local)
        practice_row = session.get(Practice, local.practice_id)
        assert practice_row is not None
        conn = PracticeConnection.of(practice_row)
        mrn_system = practice_row.mrn_system
    try:
        found = resolve(hub, conn, snap, mrn_system, actor)
    except EhrUnsupported as exc:
        # The EHR cannot be asked (no Patient read or search): nothing is known about the patient,
        # so nothing changes; the practice's configuration is what needs fixing.
        with hub.sessions() as session, session.begin():
            audit.record(
                session,
                action="patient.relink_unsupported",
                outcome=audit.Outcome.failure,
                actor=actor,
                organization_id=snap.organization_id,
                practice_id=conn.id,
                resource_type="Patient",
                resource_ids=[snap.patient_id],
                status_code=exc.status_code,
                detail={"error": exc.error_code},
            )
        raise
    now = utcnow()
    with hub.sessions() as session, session.begin():
        locked = session.scalar(select(Patient).where(Patient.id == snap.patient_id).with_for_update())
        if locked is None:
            return None
        local = locked
        if found.how == How.current and found.ehr is not None and local.ehr_id == found.ehr.ehr_id:
            apply_ehr(local, found.ehr, now)
            follow_outbox(session, local, now=now, actor=actor)
            return local.ehr_id
        # (How.current with another id: someone re-linked it meanwhile; the EHR's word counts.)
        if found.ehr is not None:
            survivor = apply_relink(session, local, found.ehr, how=found.how, now=now, actor=actor)
            return survivor.ehr_id
        if found.how == How.ambiguous:
            audit.record(
                session,
                action="patient.relink_ambiguous",
                outcome=audit.Outcome.failure,
                actor=actor,
                organization_id=local.organization_id,
                practice_id=local.practice_id,
                resource_type="Patient",
                resource_ids=[local.id],
                detail={"candidates": found.candidates},
            )
            return None
        gone(session, local, now=now, actor=actor)
        return None


def relink_for_delivery(hub: Hub, outbox_id: str, *, actor: audit.Actor | str = SERVICE) -> str | None:
    """The delivery worker's hook: the EHR refused the row's subject (404/410, or 422 naming the
    patient as unknown or replaced). Call it with no transaction open, after dead-lettering the row
    with reason ``patient_not_found``; a re-linked patient's row comes back ``pending`` with the new
    subject. Returns the patient's current EHR id, or None (row stays dead, with the reason)."""
    with hub.sessions() as session:
        entry = session.get(OutboxEntry, outbox_id)
        if entry is None or entry.patient_id is None or entry.practice_id is None:
            return None
        practice_id, patient_id = entry.practice_id, entry.patient_id
    return relink_patient(hub, practice_id, patient_id, actor=actor)
