"""Patient registry routes (SPEC §4): EHR search and import, patients, providers, programs.

Routes that call the EHR or read PHI take the hub, not a request-long session: no database
transaction may stay open across an EHR call (docs/smart.md), and the ``phi.access`` audit entry
is written while the response starts, which on SQLite must not wait for the request's own
transaction.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from vitalbridge.api.deps import HubDep, SessionDep, require_role
from vitalbridge.api.types import MAX_OFFSET, REF_PATTERN, RefParam
from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.observability.context import current_correlation_id
from vitalbridge.patients import importer, service
from vitalbridge.patients import relink as relink_module
from vitalbridge.patients.bulk import background
from vitalbridge.patients.models import PatientStatus
from vitalbridge.patients.schemas import (
    ImportedPatient,
    ImportIn,
    ImportOut,
    PatientOut,
    PatientPage,
    ProgramIn,
    ProgramOut,
    ProviderIn,
    ProviderOut,
    SearchHit,
    SearchOut,
    SyncIn,
    SyncOut,
)
from vitalbridge.tenancy.models import Role
from vitalbridge.tenancy.service import Principal

ecw_router = APIRouter(prefix="/api/v1/ecw/patients", tags=["patients"])
patients_router = APIRouter(prefix="/api/v1/patients", tags=["patients"])
providers_router = APIRouter(prefix="/api/v1/providers", tags=["patients"])
programs_router = APIRouter(prefix="/api/v1/programs", tags=["patients"])

ClinicianPhi = Annotated[Principal, Depends(require_role(Role.clinician, phi=True))]
Reader = Annotated[Principal, Depends(require_role(Role.clinician, Role.integration))]
Admin = Annotated[Principal, Depends(require_role(Role.admin))]
Relinker = Annotated[Principal, Depends(require_role(Role.clinician, Role.integration, phi=True))]


def _actor(principal: Principal) -> Actor:
    return Actor("token", principal.token_id)


@ecw_router.get("/search/", response_model=SearchOut, summary="Search the EHR's patients")
def search(
    hub: HubDep,
    principal: ClinicianPhi,
    practice: Annotated[str | None, Query(pattern=REF_PATTERN, description="practice id or code")] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    birthdate: Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD")] = None,
    identifier: Annotated[str | None, Query(max_length=300, description="MRN, or system|value")] = None,
    count: Annotated[int, Query(alias="_count", description="results wanted, 1-100")] = 20,
) -> SearchOut:
    criteria = importer.SearchCriteria(name=name, birthdate=birthdate, identifier=identifier, count=count)
    outcome = importer.search(
        hub,
        principal.organization_id,
        practice,
        criteria,
        actor=_actor(principal),
        correlation_id=current_correlation_id(),
    )
    return SearchOut(
        count=len(outcome.hits),
        total=outcome.total,
        unreadable=outcome.unreadable,
        patients=[
            SearchHit(
                ecw_id=h.patient.ehr_id,
                first_name=h.patient.given_name,
                last_name=h.patient.family_name,
                date_of_birth=h.patient.birth_date,
                gender=h.patient.gender,
                mrn=h.patient.mrn,
                phone=h.patient.phone,
                already_imported=h.already_imported,
            )
            for h in outcome.hits
        ],
    )


@ecw_router.post("/import/", response_model=ImportOut, summary="Import or refresh patients from the EHR")
def import_patients(body: ImportIn, hub: HubDep, principal: ClinicianPhi) -> ImportOut:
    outcome = importer.import_patients(
        hub,
        principal.organization_id,
        body.practice,
        body.patient_ids,
        provider_ref=body.assign_to_provider,
        program_ref=body.program,
        actor=_actor(principal),
        correlation_id=current_correlation_id(),
    )
    return ImportOut(
        imported=outcome.imported,
        skipped=outcome.skipped,
        patients=[
            ImportedPatient(id=i.patient_id, ecw_id=i.ecw_id, name=i.name, status=i.status) for i in outcome.items
        ],
    )


@patients_router.get("/", response_model=PatientPage, summary="The organization's patients")
def list_patients(
    hub: HubDep,
    principal: ClinicianPhi,
    practice: Annotated[str | None, Query(pattern=REF_PATTERN, description="practice id or code")] = None,
    program: Annotated[str | None, Query(pattern=REF_PATTERN, description="program id or code")] = None,
    provider: Annotated[str | None, Query(pattern=REF_PATTERN, description="provider id")] = None,
    status: PatientStatus | None = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100, description="name, MRN or EHR id contains")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> PatientPage:
    org = principal.organization_id
    with hub.sessions() as session:
        f = service.PatientFilter(
            practice_id=importer.resolve_practice(session, org, practice).id if practice else None,
            program_id=service.get_program(session, org, program).id if program else None,
            provider_id=service.get_provider(session, org, provider).id if provider else None,
            status=status,
            q=q,
            limit=limit,
            offset=offset,
        )
        total, patients = service.list_patients(session, org, f)
    return PatientPage(total=total, limit=limit, offset=offset, patients=patients)


@patients_router.get("/{patient_id}", response_model=PatientOut, summary="One patient")
def get_patient(patient_id: RefParam, hub: HubDep, principal: ClinicianPhi) -> PatientOut:
    with hub.sessions() as session:
        patient = importer.get_patient(session, principal.organization_id, patient_id)
        return service.describe(session, [patient])[0]


@patients_router.post("/{patient_id}/relink", response_model=PatientOut, summary="Re-resolve at the EHR")
def relink(patient_id: RefParam, hub: HubDep, principal: Relinker) -> PatientOut:
    """Ask the EHR for the patient's record now: follows EHR merges, or marks the patient gone."""
    with hub.sessions() as session:
        patient = importer.get_patient(session, principal.organization_id, patient_id)
        practice_id = patient.practice_id
    relink_module.relink_patient(hub, practice_id, patient_id, actor=_actor(principal))
    with hub.sessions() as session:
        return service.describe(session, [importer.get_patient(session, principal.organization_id, patient_id)])[0]


@providers_router.get("/", response_model=list[ProviderOut])
def list_providers(session: SessionDep, principal: Reader) -> list[ProviderOut]:
    return [ProviderOut.model_validate(p) for p in service.list_providers(session, principal.organization_id)]


@providers_router.post("/", status_code=201, response_model=ProviderOut)
def create_provider(body: ProviderIn, session: SessionDep, principal: Admin) -> ProviderOut:
    provider = service.create_provider(session, principal.organization_id, body)
    record(
        session,
        action="provider.created",
        outcome=Outcome.success,
        actor=_actor(principal),
        organization_id=principal.organization_id,
        resource_type="Provider",
        resource_ids=[provider.id],
        correlation_id=current_correlation_id(),
    )
    return ProviderOut.model_validate(provider)


@programs_router.get("/", response_model=list[ProgramOut])
def list_programs(session: SessionDep, principal: Reader) -> list[ProgramOut]:
    return [ProgramOut.model_validate(p) for p in service.list_programs(session, principal.organization_id)]


@programs_router.post("/", status_code=201, response_model=ProgramOut)
def create_program(body: ProgramIn, session: SessionDep, principal: Admin) -> ProgramOut:
    program = service.create_program(session, principal.organization_id, body)
    record(
        session,
        action="program.created",
        outcome=Outcome.success,
        actor=_actor(principal),
        organization_id=principal.organization_id,
        resource_type="Program",
        resource_ids=[program.id],
        correlation_id=current_correlation_id(),
        detail={"code": program.code},
    )
    return ProgramOut.model_validate(program)


SyncAdmin = Annotated[Principal, Depends(require_role(Role.admin))]
SyncReader = Annotated[Principal, Depends(require_role(Role.integration))]


@ecw_router.post("/sync/", status_code=202, response_model=SyncOut, summary="Start a Bulk $export population sync")
def start_sync(body: SyncIn, hub: HubDep, principal: SyncAdmin) -> SyncOut:
    """Runs in the background in this hub process; an unfinished sync of the practice is resumed."""
    job_id = background.start(
        hub, principal.organization_id, body.practice, since=body.since, group=body.group, actor=_actor(principal)
    )
    with hub.sessions() as session:
        return background.describe(session, principal.organization_id, job_id)


@ecw_router.get("/sync/{sync_id}", response_model=SyncOut, summary="Progress of a population sync")
def get_sync(sync_id: RefParam, hub: HubDep, principal: SyncReader) -> SyncOut:
    with hub.sessions() as session:
        return background.describe(session, principal.organization_id, sync_id)


ROUTERS = [ecw_router, patients_router, providers_router, programs_router]
