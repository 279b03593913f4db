"""Queries over the HL7 message log, shared by the API and the CLI (SPEC §4, DESIGN principle 5)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.errors import NotFound
from vitalbridge.hl7v2.models import Direction, Hl7Message, Hl7MessageStatus


def list_messages(
    session: Session,
    organization_id: str | None,
    *,
    status: Hl7MessageStatus | None = None,
    direction: Direction | None = None,
    practice_id: str | None = None,
    before: datetime | None = None,
    limit: int = 100,
    unrouted: bool = False,
) -> list[Hl7Message]:
    """Newest first. ``organization_id=None`` is the operator's view (CLI) across all tenants;
    ``unrouted`` then shows only messages that matched no practice."""
    query = select(Hl7Message)
    if organization_id is not None:
        query = query.where(Hl7Message.organization_id == organization_id)
    elif unrouted:
        query = query.where(Hl7Message.organization_id.is_(None))
    if status is not None:
        query = query.where(Hl7Message.status == status)
    if direction is not None:
        query = query.where(Hl7Message.direction == direction)
    if practice_id is not None:
        query = query.where(Hl7Message.practice_id == practice_id)
    if before is not None:
        query = query.where(Hl7Message.received_at < before)
    query = query.order_by(Hl7Message.received_at.desc(), Hl7Message.id.desc()).limit(limit)
    return list(session.scalars(query))


def get_message(session: Session, organization_id: str | None, message_id: str) -> Hl7Message:
    row = session.get(Hl7Message, message_id)
    if row is None or (organization_id is not None and row.organization_id != organization_id):
        raise NotFound("no such HL7 message")
    return row
