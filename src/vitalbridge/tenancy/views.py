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
from vitalbridge.tenancy.schemas import PracticeIn, PracticeOut, PracticePatch
from vitalbridge.tenancy.service import Principal

router = APIRouter(prefix="/api/v1/practices", tags=["practices"])

AdminDep = Annotated[Principal, Depends(require_role(Role.admin))]
AnyRoleDep = Annotated[Principal, Depends(require_role(Role.clinician, Role.integration, Role.billing))]


@router.post("/", status_code=201, response_model=PracticeOut)
def register_practice(body: PracticeIn, session: SessionDep, hub: HubDep, principal: AdminDep) -> PracticeOut:
    practice = service.add_practice(
        session, principal.organization_id, body, hub.sealer, hub.settings, resolver=hub.resolver
    )
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
    return PracticeOut.of(practice, base_url=hub.settings.base_url)


@router.patch("/{practice_id}", response_model=PracticeOut)
def edit_practice(
    practice_id: RefParam, body: PracticePatch, session: SessionDep, hub: HubDep, principal: AdminDep
) -> PracticeOut:
    """Change a practice's registration: only the fields sent change; ``null`` clears an optional
    one. The client secret is write-only. The hub-wide uniqueness rules apply as on registration,
    and cached EHR tokens of the old registration are dropped."""
    practice, changed = service.update_practice(
        session, principal.organization_id, practice_id, body, hub.sealer, hub.settings, resolver=hub.resolver
    )
    record(
        session,
        action="practice.updated",
        outcome=Outcome.success,
        actor=Actor("token", principal.token_id),
        organization_id=principal.organization_id,
        practice_id=practice.id,
        resource_type="Practice",
        resource_ids=[practice.id],
        correlation_id=current_correlation_id(),
        # Field names only: values (URLs, client ids, secrets) stay out of the audit trail.
        detail={"fields": sorted(changed)},
    )
    return PracticeOut.of(practice, base_url=hub.settings.base_url)


@router.get("/", response_model=list[PracticeOut])
def list_practices(session: SessionDep, hub: HubDep, principal: AnyRoleDep) -> list[PracticeOut]:
    return [
        PracticeOut.of(p, base_url=hub.settings.base_url)
        for p in service.list_practices(session, principal.organization_id)
    ]


@router.get("/{practice_id}", response_model=PracticeOut)
def get_practice(practice_id: RefParam, session: SessionDep, hub: HubDep, principal: AnyRoleDep) -> PracticeOut:
    practice = service.get_practice(session, principal.organization_id, practice_id)
    return PracticeOut.of(practice, base_url=hub.settings.base_url)
