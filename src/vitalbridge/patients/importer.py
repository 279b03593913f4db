"""EHR patient search and import (SPEC §4): the service behind the API routes and the CLI.

Each function reads the EHR first, with no database transaction open, and then writes the
registry and the audit trail in one transaction. Audit entries carry ids and counts, never
names, birth dates or search values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge import audit
from vitalbridge.db.base import utcnow
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.errors import EhrNotFound, FieldError, NotFound, ValidationFailed
from vitalbridge.patients import registry
from vitalbridge.patients.ehr_reads import FHIR_ID, read_patient, search_patients
from vitalbridge.patients.fhir_mapping import EhrPatient
from vitalbridge.patients.models import Patient, PatientEhrAlias, Program, Provider
from vitalbridge.patients.relink import relink_patient
from vitalbridge.runtime import Hub
from vitalbridge.tenancy import service as tenancy
from vitalbridge.tenancy.models import Practice

_BIRTHDATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_COUNT = 100


@dataclass(frozen=True)
class SearchCriteria:
    name: str | None = None
    birthdate: str | None = None
    identifier: str | None = None
    count: int = 20

    def validate(self) -> dict[str, str]:
        """The FHIR search parameters; ``ValidationFailed`` (422) with one error per bad field."""
        errors: list[FieldError] = []
        params: dict[str, str] = {}
        if self.name is not None:
            name = self.name.strip()
            if not name:
                errors.append(FieldError(("query", "name"), "must not be blank"))
            else:
                params["name"] = name
        if self.birthdate is not None:
            ok = bool(_BIRTHDATE.match(self.birthdate))
            if ok:
                try:
                    date.fromisoformat(self.birthdate)
                except ValueError:
                    ok = False
            if not ok:
                errors.append(FieldError(("query", "birthdate"), "must be a date as YYYY-MM-DD", "date_from_string"))
            else:
                params["birthdate"] = self.birthdate
        if self.identifier is not None:
            ident = self.identifier.strip()
            if not ident:
                errors.append(FieldError(("query", "identifier"), "must not be blank"))
            else:
                params["identifier"] = ident
        if not 1 <= self.count <= MAX_COUNT:
            errors.append(FieldError(("query", "_count"), f"must be between 1 and {MAX_COUNT}", "less_than_equal"))
        if not errors and not params:
            errors.append(
                FieldError(("query",), "give at least one of name, birthdate or identifier", "missing_criterion")
            )
        if errors:
            raise ValidationFailed("invalid patient search", errors)
        return params


@dataclass(frozen=True)
class Hit:
    patient: EhrPatient
    already_imported: bool


@dataclass
class SearchOutcome:
    hits: list[Hit]
    total: int | None
    unreadable: int


def resolve_practice(session: Session, organization_id: str, ref: str | None) -> Practice:
    """The organization's practice by id or code; with a single practice, ``ref`` may be omitted."""
    if ref:
        return tenancy.get_practice(session, organization_id, ref)
    practices = tenancy.list_practices(session, organization_id)
    if len(practices) == 1:
        return practices[0]
    raise ValidationFailed(
        "name the practice (id or practice code)",
        [FieldError(("query", "practice"), "required when the organization has more than one practice")],
    )


def _practice(hub: Hub, organization_id: str, ref: str | None) -> tuple[PracticeConnection, str | None]:
    with hub.sessions() as session:
        practice = resolve_practice(session, organization_id, ref)
        return PracticeConnection.of(practice), practice.mrn_system


def imported_ids(session: Session, practice_id: str, ehr_ids: list[str]) -> set[str]:
    """Which of these EHR ids the registry knows (current ids and pre-merge aliases)."""
    if not ehr_ids:
        return set()
    current = session.scalars(
        select(Patient.ehr_id).where(Patient.practice_id == practice_id, Patient.ehr_id.in_(ehr_ids))
    ).all()
    old = session.scalars(
        select(PatientEhrAlias.ehr_id).where(
            PatientEhrAlias.practice_id == practice_id, PatientEhrAlias.ehr_id.in_(ehr_ids)
        )
    ).all()
    return {i for i in current if i} | set(old)


def search(
    hub: Hub,
    organization_id: str,
    practice_ref: str | None,
    criteria: SearchCriteria,
    *,
    actor: audit.Actor | str,
    correlation_id: str | None = None,
) -> SearchOutcome:
    params = criteria.validate()
    conn, mrn_system = _practice(hub, organization_id, practice_ref)
    found = search_patients(
        hub, conn, params, count=criteria.count, mrn_system=mrn_system, actor=actor, correlation_id=correlation_id
    )
    with hub.sessions() as session, session.begin():
        known = imported_ids(session, conn.id, [p.ehr_id for p in found.patients])
        audit.record(
            session,
            action="patients.searched",
            outcome=audit.Outcome.success,
            actor=actor,
            organization_id=organization_id,
            practice_id=conn.id,
            resource_type="Patient",
            resource_ids=[p.ehr_id for p in found.patients],
            correlation_id=correlation_id,
            # Parameter names only: the values are a patient's name, birth date or MRN.
            detail={"params": sorted(params), "count": len(found.patients), "pages": found.pages},
        )
    return SearchOutcome([Hit(p, p.ehr_id in known) for p in found.patients], found.total, found.unreadable)


@dataclass
class ImportItem:
    ecw_id: str
    status: str
    patient_id: str | None = None
    name: str = ""
    requested: str | None = None  # the id asked for, when ``ecw_id`` is its successor


@dataclass
class ImportOutcome:
    items: list[ImportItem] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return sum(1 for i in self.items if i.patient_id and i.status in ("created", "updated", "relinked"))

    @property
    def skipped(self) -> int:
        return len(self.items) - self.imported


def _assignment(
    session: Session, organization_id: str, provider_ref: str | None, program_ref: str | None
) -> tuple[str | None, str | None]:
    provider_id = program_id = None
    errors: list[FieldError] = []
    if provider_ref:
        provider = session.scalar(
            select(Provider).where(Provider.organization_id == organization_id, Provider.id == provider_ref)
        )
        if provider is None:
            errors.append(FieldError(("body", "assign_to_provider"), "no such provider in this organization"))
        else:
            provider_id = provider.id
    if program_ref:
        program = session.scalar(
            select(Program).where(
                Program.organization_id == organization_id, (Program.id == program_ref) | (Program.code == program_ref)
            )
        )
        if program is None:
            errors.append(FieldError(("body", "program"), "no such program in this organization"))
        else:
            program_id = program.id
    if errors:
        raise ValidationFailed("unknown provider or program", errors)
    return provider_id, program_id


def import_patients(
    hub: Hub,
    organization_id: str,
    practice_ref: str | None,
    ehr_ids: list[str],
    *,
    provider_ref: str | None = None,
    program_ref: str | None = None,
    actor: audit.Actor | str,
    correlation_id: str | None = None,
) -> ImportOutcome:
    """Read each Patient from the EHR and create or refresh its registry patient (idempotent)."""
    bad = [
        FieldError(("body", "patient_ids", n), "not a FHIR id") for n, i in enumerate(ehr_ids) if not FHIR_ID.match(i)
    ]
    if bad:
        raise ValidationFailed("invalid patient ids", bad)
    with hub.sessions() as session:
        practice = resolve_practice(session, organization_id, practice_ref)
        conn, mrn_system = PracticeConnection.of(practice), practice.mrn_system
        provider_id, program_id = _assignment(session, organization_id, provider_ref, program_ref)

    outcome = ImportOutcome()
    fetched: list[tuple[str, EhrPatient]] = []
    for ehr_id in dict.fromkeys(ehr_ids):
        try:
            ehr = read_patient(hub, conn, ehr_id, mrn_system=mrn_system, actor=actor, correlation_id=correlation_id)
        except EhrNotFound:
            outcome.items.append(_missing(hub, conn, ehr_id, actor))
            continue
        except ValidationFailed:
            outcome.items.append(ImportItem(ehr_id, "invalid"))
            continue
        if ehr.replaced_by and not ehr.active:
            # Merged away at the EHR: a registry patient on this id follows to the successor;
            # the successor itself is what gets imported.
            outcome.items.append(_replaced(hub, conn, ehr, actor, mrn_system, correlation_id, fetched))
            continue
        fetched.append((ehr_id, ehr))

    now = utcnow()
    with hub.sessions() as session, session.begin():
        row = session.get(Practice, conn.id)
        assert row is not None
        touched: list[str] = []
        for ehr_id, ehr in fetched:
            done = registry.upsert(
                session, row, ehr, now=now, actor=actor, program_id=program_id, provider_id=provider_id
            )
            touched.append(done.patient.id)
            status = "created" if done.created else "updated"
            existing = next((i for i in outcome.items if i.ecw_id == ehr_id), None)
            if existing is not None:  # the successor of a replaced id
                existing.patient_id, existing.name = done.patient.id, ehr.display_name
                if existing.status != "relinked":
                    existing.status = status
            else:
                outcome.items.append(ImportItem(ehr_id, status, done.patient.id, ehr.display_name))
        audit.record(
            session,
            action="patients.imported",
            outcome=audit.Outcome.success if outcome.imported or not outcome.items else audit.Outcome.failure,
            actor=actor,
            organization_id=organization_id,
            practice_id=conn.id,
            resource_type="Patient",
            resource_ids=list(dict.fromkeys(touched)),
            correlation_id=correlation_id,
            detail={
                "requested": len(ehr_ids),
                "imported": outcome.imported,
                "skipped": outcome.skipped,
                "statuses": sorted({i.status for i in outcome.items}),
            },
        )
    # Answer in the order asked (a replaced id's line sits where the old id was asked for).
    order = {ehr_id: n for n, ehr_id in enumerate(dict.fromkeys(ehr_ids))}
    outcome.items.sort(key=lambda i: order.get(i.requested or i.ecw_id, len(order)))
    return outcome


def _missing(hub: Hub, conn: PracticeConnection, ehr_id: str, actor: audit.Actor | str) -> ImportItem:
    """404/410 for an id: a registry patient linked to it is re-resolved (EHR merge)."""
    with hub.sessions() as session:
        local = registry.find_by_ehr_id(session, conn.id, ehr_id)
        local_id = local.id if local is not None and local.ehr_id == ehr_id else None
    if local_id is None:
        return ImportItem(ehr_id, "not_found")
    new_id = relink_patient(hub, conn, local_id, actor=actor)
    with hub.sessions() as session:
        patient = session.get(Patient, local_id)
        name = f"{patient.given_name} {patient.family_name}".strip() if patient else ""
    if new_id is None:
        return ImportItem(ehr_id, "inactive", local_id, name)
    return ImportItem(new_id, "relinked", local_id, name, requested=ehr_id)


def _replaced(
    hub: Hub,
    conn: PracticeConnection,
    ehr: EhrPatient,
    actor: audit.Actor | str,
    mrn_system: str | None,
    correlation_id: str | None,
    fetched: list[tuple[str, EhrPatient]],
) -> ImportItem:
    with hub.sessions() as session:
        local = registry.find_by_ehr_id(session, conn.id, ehr.ehr_id)
        local_id = local.id if local is not None and local.ehr_id == ehr.ehr_id else None
    if local_id is not None:
        new_id = relink_patient(hub, conn, local_id, actor=actor)
        if new_id is None:
            return ImportItem(ehr.ehr_id, "inactive", local_id, ehr.display_name)
        successor = read_patient(hub, conn, new_id, mrn_system=mrn_system, actor=actor, correlation_id=correlation_id)
        fetched.append((new_id, successor))
        return ImportItem(new_id, "relinked", local_id, successor.display_name, requested=ehr.ehr_id)
    assert ehr.replaced_by is not None
    try:
        successor = read_patient(
            hub, conn, ehr.replaced_by, mrn_system=mrn_system, actor=actor, correlation_id=correlation_id
        )
    except (EhrNotFound, ValidationFailed):
        return ImportItem(ehr.ehr_id, "not_found")
    fetched.append((successor.ehr_id, successor))
    return ImportItem(successor.ehr_id, "created", requested=ehr.ehr_id)


def get_patient(session: Session, organization_id: str, patient_id: str) -> Patient:
    patient = session.scalar(
        select(Patient).where(Patient.organization_id == organization_id, Patient.id == patient_id)
    )
    if patient is None:
        raise NotFound("no such patient in this organization")
    return patient
