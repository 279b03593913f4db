"""``/api/v1/hl7/messages/``: the HL7 message log of the caller's organization (SPEC §4 HL7 v2).

Admin and integration tokens see message metadata; raw content is PHI and only an admin who
asks (``?include_raw=true``) gets it — and that viewing is itself audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from vitalbridge import audit
from vitalbridge.api.deps import SessionDep, require_role
from vitalbridge.errors import Forbidden
from vitalbridge.hl7v2 import service
from vitalbridge.hl7v2.models import Direction, Hl7Message, Hl7MessageStatus
from vitalbridge.hl7v2.schemas import Hl7MessageOut, Hl7MessagePage
from vitalbridge.tenancy.models import Role
from vitalbridge.tenancy.service import Principal, get_practice

router = APIRouter(prefix="/api/v1/hl7", tags=["hl7"])

ReaderDep = Annotated[Principal, Depends(require_role(Role.integration))]


def _check_raw(principal: Principal, include_raw: bool) -> None:
    if include_raw and principal.role is not Role.admin:
        raise Forbidden("raw HL7 content contains patient data; only admin tokens may request include_raw")


def _audit_raw(session: Session, principal: Principal, rows: list[Hl7Message]) -> None:
    if not rows:
        return
    audit.record(
        session,
        action="hl7.raw_viewed",
        outcome=audit.Outcome.success,
        actor=audit.Actor("user", principal.user_id) if principal.user_id else audit.Actor("token", principal.token_id),
        organization_id=principal.organization_id,
        resource_type="Hl7Message",
        resource_ids=[r.id for r in rows],
        status_code=200,
    )


@router.get("/messages/", response_model=Hl7MessagePage)
def list_messages(
    session: SessionDep,
    principal: ReaderDep,
    status: Hl7MessageStatus | None = None,
    direction: Direction | None = None,
    practice: Annotated[str | None, Query(description="Practice id or practice code")] = None,
    before: Annotated[datetime | None, Query(description="Only messages received before this time (paging)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    include_raw: bool = False,
) -> Hl7MessagePage:
    _check_raw(principal, include_raw)
    practice_id = get_practice(session, principal.organization_id, practice).id if practice else None
    rows = service.list_messages(
        session,
        principal.organization_id,
        status=status,
        direction=direction,
        practice_id=practice_id,
        before=before,
        limit=limit,
    )
    if include_raw:
        _audit_raw(session, principal, rows)
    return Hl7MessagePage(
        count=len(rows),
        messages=[Hl7MessageOut.of(r, include_raw=include_raw) for r in rows],
        next_before=rows[-1].received_at if len(rows) == limit else None,
    )


@router.get("/messages/{message_id}", response_model=Hl7MessageOut)
def get_message(message_id: str, session: SessionDep, principal: ReaderDep, include_raw: bool = False) -> Hl7MessageOut:
    _check_raw(principal, include_raw)
    row = service.get_message(session, principal.organization_id, message_id)
    if include_raw:
        _audit_raw(session, principal, [row])
    return Hl7MessageOut.of(row, include_raw=include_raw)
