"""The quarantine (SPEC §5, DESIGN principle 5): what the hub could not accept, kept for review.

Only authenticated payloads are kept (an unauthenticated body is refused with 401 and only
audited), so the table cannot be filled by anyone without a gateway secret. Each row keeps the
raw bytes and the field errors; review dismisses it or reprocesses it with the current code
(``devices.receive.reprocess``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.devices.models import QuarantinedPayload, QuarantineReason, QuarantineStatus
from vitalbridge.devices.readings import ReadingSource
from vitalbridge.errors import Conflict, FieldError, NotFound

# Field-error type of a reading id already stored with different content (devices.ingest).
READING_ID_CONFLICT = "reading_id_conflict"
_IMPLAUSIBLE = ("value_error.implausible", "value_error.future", "value_error.past")


def classify(errors: list[FieldError]) -> QuarantineReason:
    types = {e.type for e in errors}
    if READING_ID_CONFLICT in types:
        return QuarantineReason.conflict
    # json_invalid, json_too_deep, json_number_too_long, json_number_out_of_range (strict_json).
    if "model_type" in types or any(t.startswith("json_") for t in types):
        return QuarantineReason.malformed
    if any(t.startswith("fhir.") for t in types):
        return QuarantineReason.invalid_fhir
    if types and all(t in _IMPLAUSIBLE for t in types):
        return QuarantineReason.implausible
    return QuarantineReason.invalid


def put(
    session: Session,
    *,
    organization_id: str,
    gateway_id: str | None,
    source: ReadingSource,
    raw_body: bytes,
    errors: list[FieldError],
    now: datetime,
    actor: Actor | str,
    content_type: str | None = None,
    gateway_reading_id: str | None = None,
    correlation_id: str | None = None,
    status_code: int = 422,
) -> QuarantinedPayload:
    item = QuarantinedPayload(
        organization_id=organization_id,
        gateway_id=gateway_id,
        source=source,
        reason=classify(errors),
        raw_body=raw_body,
        content_type=(content_type or "")[:100] or None,
        errors=[e.as_dict() for e in errors],
        gateway_reading_id=gateway_reading_id,
        received_at=now,
        status=QuarantineStatus.open,
    )
    session.add(item)
    session.flush()
    record(
        session,
        action=f"{source.value}.quarantined",
        outcome=Outcome.failure,
        actor=actor,
        organization_id=organization_id,
        resource_type="Quarantine",
        resource_ids=[item.id],
        status_code=status_code,
        correlation_id=correlation_id,
        # Error locations and types only: messages can quote units the device sent.
        detail={"reason": item.reason.value, "fields": sorted({".".join(map(str, e.loc)) for e in errors})[:20]},
    )
    return item


def get(session: Session, organization_id: str, item_id: str, *, for_update: bool = False) -> QuarantinedPayload:
    q = select(QuarantinedPayload).where(
        QuarantinedPayload.id == item_id, QuarantinedPayload.organization_id == organization_id
    )
    item = session.scalar(q.with_for_update() if for_update else q)
    if item is None:
        raise NotFound("no such quarantined payload in this organization")
    return item


def list_items(
    session: Session,
    organization_id: str,
    *,
    status: QuarantineStatus | None = None,
    reason: QuarantineReason | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[QuarantinedPayload]:
    q = select(QuarantinedPayload).where(QuarantinedPayload.organization_id == organization_id)
    if status is not None:
        q = q.where(QuarantinedPayload.status == status)
    if reason is not None:
        q = q.where(QuarantinedPayload.reason == reason)
    q = q.order_by(QuarantinedPayload.received_at.desc(), QuarantinedPayload.id).limit(limit).offset(offset)
    return list(session.scalars(q))


def dismiss(
    session: Session, organization_id: str, item_id: str, *, actor: Actor | str, now: datetime, note: str | None
) -> QuarantinedPayload:
    item = get(session, organization_id, item_id, for_update=True)
    if item.status is not QuarantineStatus.open:
        raise Conflict(f"quarantined payload is already {item.status.value}")
    item.status = QuarantineStatus.dismissed
    item.reviewed_at = now
    item.reviewed_by = str(actor)
    item.review_note = note
    record(
        session,
        action="quarantine.dismissed",
        outcome=Outcome.success,
        actor=actor,
        organization_id=organization_id,
        resource_type="Quarantine",
        resource_ids=[item.id],
    )
    return item
