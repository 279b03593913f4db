"""``/api/v1/practices/``: register and list the organization's EHR tenants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from vitalbridge.api.deps import HubDep, SessionDep, require_role
from vitalbridge.api.types import RefParam
from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.observability.context import current_correlation_id
from vitalbridge.tenancy import service
from vitalbridge.tenancy.models import Role
from vitalbridge.tenancy.schemas import PracticeIn, PracticeOut
from vitalbridge.tenancy.service import Principal

router = APIRouter(prefix="/api/v1/practices", tags=["practices"])

AdminDep = Annotated[Principal, Depends(require_role(Role.admin))]
AnyRoleDep = Annotated[Principal, Depends(require_role(Role.clinician, Role.integration, Role.billing))]


@router.post("/", status_code=201, response_model=PracticeOut)
def register_practice(body: PracticeIn, session: SessionDep, hub: HubDep, principal: AdminDep) -> PracticeOut:
    practice = service.add_practice(session, principal.organization_id, body, hub.sealer, hub.settings)
    record(
        session,
        action="practice.created",
        outcome=Outcome.success,
        actor=Actor("token", principal.token_id),
        organization_id=principal.organization_id,
        practice_id=practice.id,
        resource_type="Practice",
        resource_ids=[practice.id],
        correlation_id=current_correlation_id(),
    )
    return PracticeOut.of(practice)


@router.get("/", response_model=list[PracticeOut])
def list_practices(session: SessionDep, principal: AnyRoleDep) -> list[PracticeOut]:
    return [PracticeOut.of(p) for p in service.list_practices(session, principal.organization_id)]


@router.get("/{practice_id}", response_model=PracticeOut)
def get_practice(practice_id: RefParam, session: SessionDep, principal: AnyRoleDep) -> PracticeOut:
    return PracticeOut.of(service.get_practice(session, principal.organization_id, practice_id))
