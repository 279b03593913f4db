"""The registry as the API shows it (SPEC §4, §10 dashboard): patients with their practice, EHR
id, MRN, program, provider and devices; providers and programs as real records.

Every query filters by organization: other tenants' rows look absent (404), never forbidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vitalbridge.devices.models import Device
from vitalbridge.errors import Conflict, FieldError, NotFound, ValidationFailed
from vitalbridge.patients.models import Patient, PatientEhrAlias, PatientStatus, Program, Provider
from vitalbridge.patients.schemas import (
    DeviceRef,
    PatientOut,
    PatientRef,
    ProgramIn,
    ProviderIn,
)
from vitalbridge.tenancy.models import Practice, User
from vitalbridge.triage.rules import check_layer


@dataclass(frozen=True)
class PatientFilter:
    practice_id: str | None = None
    program_id: str | None = None
    provider_id: str | None = None
    status: PatientStatus | None = None
    q: str | None = None  # name, MRN or EHR id, case-insensitive substring
    limit: int = 50
    offset: int = 0


def list_patients(session: Session, organization_id: str, f: PatientFilter) -> tuple[int, list[PatientOut]]:
    query = select(Patient).where(Patient.organization_id == organization_id)
    if f.practice_id:
        query = query.where(Patient.practice_id == f.practice_id)
    if f.program_id:
        query = query.where(Patient.program_id == f.program_id)
    if f.provider_id:
        query = query.where(Patient.provider_id == f.provider_id)
    if f.status:
        query = query.where(Patient.status == f.status)
    if f.q:
        needle = f"%{f.q.lower()}%"
        query = query.where(
            or_(
                func.lower(Patient.given_name).like(needle),
                func.lower(Patient.family_name).like(needle),
                func.lower(Patient.mrn).like(needle),
                func.lower(Patient.ehr_id).like(needle),
            )
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Patient.family_name, Patient.given_name, Patient.id).limit(f.limit).offset(f.offset)
    ).all()
    return int(total), describe(session, rows)


def describe(session: Session, patients: Sequence[Patient]) -> list[PatientOut]:
    """API views of patients, with related rows fetched in one query per kind."""
    if not patients:
        return []
    ids = [p.id for p in patients]
    practices = {
        p.id: p.practice_code
        for p in session.scalars(select(Practice).where(Practice.id.in_({p.practice_id for p in patients})))
    }
    program_ids = {p.program_id for p in patients if p.program_id}
    programs = {p.id: p for p in session.scalars(select(Program).where(Program.id.in_(program_ids)))}
    providers = {
        p.id: p
        for p in session.scalars(
            select(Provider).where(Provider.id.in_({p.provider_id for p in patients if p.provider_id}))
        )
    }
    devices: dict[str, list[DeviceRef]] = {}
    for d in session.scalars(select(Device).where(Device.patient_id.in_(ids)).order_by(Device.serial)):
        devices.setdefault(d.patient_id or "", []).append(DeviceRef(serial=d.serial, model=d.model))
    aliases: dict[str, list[str]] = {}
    for a in session.scalars(
        select(PatientEhrAlias).where(PatientEhrAlias.patient_id.in_(ids)).order_by(PatientEhrAlias.replaced_at)
    ):
        aliases.setdefault(a.patient_id, []).append(a.ehr_id)
    out = []
    for p in patients:
        program = programs.get(p.program_id or "")
        provider = providers.get(p.provider_id or "")
        out.append(
            PatientOut(
                id=p.id,
                practice_id=p.practice_id,
                practice_code=practices.get(p.practice_id, ""),
                ehr_id=p.ehr_id,
                mrn=p.mrn,
                first_name=p.given_name,
                last_name=p.family_name,
                date_of_birth=p.birth_date,
                gender=p.gender,
                phone=p.phone,
                status=p.status,
                status_reason=p.status_reason,
                merged_into_id=p.merged_into_id,
                program=PatientRef(id=program.id, name=program.name) if program else None,
                provider=PatientRef(id=provider.id, name=provider.name) if provider else None,
                devices=devices.get(p.id, []),
                ehr_aliases=aliases.get(p.id, []),
                ehr_synced_at=p.ehr_synced_at,
                created_at=p.created_at,
                updated_at=p.updated_at,
            )
        )
    return out


def get_program(session: Session, organization_id: str, ref: str) -> Program:
    program = session.scalar(
        select(Program).where(Program.organization_id == organization_id, (Program.id == ref) | (Program.code == ref))
    )
    if program is None:
        raise NotFound("no such program in this organization")
    return program


def get_provider(session: Session, organization_id: str, provider_id: str) -> Provider:
    provider = session.scalar(
        select(Provider).where(Provider.organization_id == organization_id, Provider.id == provider_id)
    )
    if provider is None:
        raise NotFound("no such provider in this organization")
    return provider


def list_programs(session: Session, organization_id: str) -> list[Program]:
    query = select(Program).where(Program.organization_id == organization_id).order_by(Program.code)
    return list(session.scalars(query))


def create_program(session: Session, organization_id: str, data: ProgramIn) -> Program:
    errors = check_layer(data.rules, loc=("body", "rules"))
    if errors:
        raise ValidationFailed("the program's rules are invalid (docs/triage.md)", errors)
    if session.scalar(select(Program).where(Program.organization_id == organization_id, Program.code == data.code)):
        raise Conflict("a program with this code exists in this organization")
    program = Program(organization_id=organization_id, code=data.code, name=data.name, rules=data.rules)
    try:
        with session.begin_nested():
            session.add(program)
            session.flush()
    except IntegrityError:
        raise Conflict("a program with this code exists in this organization") from None
    return program


def list_providers(session: Session, organization_id: str) -> list[Provider]:
    return list(
        session.scalars(
            select(Provider).where(Provider.organization_id == organization_id).order_by(Provider.name, Provider.id)
        )
    )


def create_provider(session: Session, organization_id: str, data: ProviderIn) -> Provider:
    if data.user_id is not None:
        user = session.scalar(select(User).where(User.organization_id == organization_id, User.id == data.user_id))
        if user is None:
            raise ValidationFailed(
                "unknown user", [FieldError(("body", "user_id"), "no such user in this organization")]
            )
    provider = Provider(
        organization_id=organization_id,
        name=data.name,
        npi=data.npi,
        ehr_practitioner_id=data.ehr_practitioner_id,
        user_id=data.user_id,
    )
    session.add(provider)
    session.flush()
    return provider
