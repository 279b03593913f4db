"""``GET /api/v1/audit/``: an organization's own audit trail, newest first (SPEC §9).

Admins only; entries of other organizations and hub-level entries (no organization) never show.
Reading the trail is itself recorded (``audit.read``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from vitalbridge.api.deps import AdminDep, SessionDep
from vitalbridge.api.types import CODE_PATTERN
from vitalbridge.audit.models import AuditEntry
from vitalbridge.audit.schemas import AuditEntryOut, AuditPage
from vitalbridge.audit.service import Actor, Outcome, record
from vitalbridge.observability.context import current_correlation_id

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

_MAX_PAGE = 500


@router.get("/", response_model=AuditPage)
def list_audit_entries(
    session: SessionDep,
    principal: AdminDep,
    action: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
    resource_type: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
    outcome: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
    correlation_id: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
    since: Annotated[datetime | None, Query(description="occurred_at ≥ since (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="occurred_at < until (ISO 8601)")] = None,
    cursor: Annotated[int | None, Query(ge=1, description="entries with seq below this (from next_cursor)")] = None,
    limit: Annotated[int, Query(ge=1, le=_MAX_PAGE)] = 100,
) -> AuditPage:
    query = select(AuditEntry).where(AuditEntry.organization_id == principal.organization_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if resource_type is not None:
        query = query.where(AuditEntry.resource_type == resource_type)
    if outcome is not None:
        query = query.where(AuditEntry.outcome == outcome)
    if correlation_id is not None:
        query = query.where(AuditEntry.correlation_id == correlation_id)
    if since is not None:
        query = query.where(AuditEntry.occurred_at >= _aware(since))
    if until is not None:
        query = query.where(AuditEntry.occurred_at < _aware(until))
    if cursor is not None:
        query = query.where(AuditEntry.seq < cursor)
    rows = list(session.scalars(query.order_by(AuditEntry.seq.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    page = AuditPage(
        entries=[AuditEntryOut.model_validate(r) for r in rows],
        next_cursor=rows[-1].seq if more and rows else None,
    )
    record(
        session,
        action="audit.read",
        outcome=Outcome.success,
        actor=Actor("token", principal.token_id),
        organization_id=principal.organization_id,
        resource_type="AuditEntry",
        status_code=200,
        correlation_id=current_correlation_id(),
        detail={"returned": len(rows)},
    )
    return page


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    # A timestamp without offset is read as UTC, as everywhere in the hub.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
