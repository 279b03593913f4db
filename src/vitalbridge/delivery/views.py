"""``/api/v1/deliveries/``: the outbox as seen by integration engineers (SPEC §7 dead letters).

Integration role (admins too). Another organization's delivery answers 404 like a missing one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from vitalbridge.api.actors import actor_of
from vitalbridge.api.deps import SessionDep, require_role
from vitalbridge.api.types import MAX_OFFSET
from vitalbridge.db.base import utcnow
from vitalbridge.delivery import service
from vitalbridge.delivery.models import OutboxStatus
from vitalbridge.delivery.schemas import DeliveryDetailOut, DeliveryOut
from vitalbridge.tenancy.models import Role
from vitalbridge.tenancy.service import Principal

router = APIRouter(prefix="/api/v1/deliveries", tags=["deliveries"])
IntegrationDep = Annotated[Principal, Depends(require_role(Role.integration, phi=True))]


@router.get("/", response_model=list[DeliveryOut])
def list_deliveries(
    session: SessionDep,
    principal: IntegrationDep,
    status: OutboxStatus | None = None,
    practice: Annotated[str | None, Query(description="hub practice id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[DeliveryOut]:
    rows = service.list_deliveries(
        session, principal.organization_id, status=status, practice_id=practice, limit=limit, offset=offset
    )
    return [DeliveryOut.of(r) for r in rows]


@router.get("/{delivery_id}", response_model=DeliveryDetailOut)
def get_delivery(delivery_id: str, session: SessionDep, principal: IntegrationDep) -> DeliveryDetailOut:
    return DeliveryDetailOut.of(service.get_delivery(session, principal.organization_id, delivery_id))


@router.post("/{delivery_id}/replay", response_model=DeliveryOut)
def replay_delivery(delivery_id: str, session: SessionDep, principal: IntegrationDep) -> DeliveryOut:
    """Send a dead letter again (after fixing its cause); the worker picks it up at once."""
    row = service.replay(session, principal.organization_id, delivery_id, actor=actor_of(principal), now=utcnow())
    return DeliveryOut.of(row)
