"""State changes of a claimed outbox row (SPEC §7; state machine in docs/delivery.md).

Each function is one short transaction that changes the row only if this worker still holds its
lease (``status = in_flight AND lease_owner = owner``), writes the audit entry in the same
transaction and returns whether it applied. ``last_error`` may hold the EHR's OperationOutcome
text: it is stored in the database (PHI-safe storage) and shown through the authenticated API,
but never logged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from vitalbridge import audit
from vitalbridge.db.base import utcnow
from vitalbridge.delivery.models import OutboxEntry, OutboxStatus
from vitalbridge.runtime import Hub

WORKER = audit.Actor.service("delivery-worker")


class DeadReason(enum.StrEnum):
    """Why a row became a dead letter (``outbox.dead_reason``)."""

    rejected = "rejected"  # the EHR refused it (403, 400/422, 409/412 …): see last_error
    auth_failed = "auth_failed"  # 401 with a fresh token, or the token endpoint refused the client
    patient_not_found = "patient_not_found"  # 404: the subject patient is unknown or was replaced
    max_age = "max_age"  # transient failures for longer than VB_DELIVERY_MAX_AGE_S
    hl7_rejected = "hl7_rejected"  # the HL7 receiver answered AE/AR
    configuration = "configuration"  # the practice cannot be delivered to as configured
    duplicate_risk = "duplicate_risk"  # the EHR can be neither searched nor conditionally created
    practice_setup = "practice_setup"  # the EHR practice must change a setting (eCW 308): see last_error
    invalid_data = "invalid_data"  # the EHR refused this content by code (eCW 611/612/613…): see last_error


@dataclass(frozen=True)
class Failure:
    """What is stored about a failed attempt: codes, the hub's message and the EHR's diagnostics."""

    error_code: str
    message: str
    status_code: int | None = None
    diagnostics: str | None = None

    @property
    def text(self) -> str:
        text = f"{self.error_code}: {self.message}"
        if self.diagnostics:
            text += f" | EHR diagnostics: {self.diagnostics}"
        return text[:1000]


def _apply(session: Session, outbox_id: str, owner: str, **values: object) -> bool:
    result = session.execute(
        update(OutboxEntry)
        .where(
            OutboxEntry.id == outbox_id,
            OutboxEntry.status == OutboxStatus.in_flight,
            OutboxEntry.lease_owner == owner,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _audit(
    session: Session,
    entry: OutboxSnapshot,
    action: str,
    outcome: audit.Outcome,
    detail: dict[str, object],
    status_code: int | None = None,
) -> None:
    audit.record(
        session,
        action=action,
        outcome=outcome,
        actor=WORKER,
        organization_id=entry.organization_id,
        practice_id=entry.practice_id,
        resource_type="Outbox",
        resource_ids=[entry.id],
        status_code=status_code,
        correlation_id=entry.id,
        detail=detail,
    )


@dataclass(frozen=True)
class OutboxSnapshot:
    """The claimed row, detached from any session (the network calls hold no transaction)."""

    id: str
    organization_id: str
    practice_id: str | None
    patient_id: str | None
    measurement_id: str
    channel: str
    resource: dict[str, Any]
    idempotency_key: str
    attempts: int
    age_from: datetime


def mark_delivered(
    hub: Hub, entry: OutboxSnapshot, owner: str, *, ehr_id: str | None, status_code: int, how: str
) -> bool:
    now = utcnow()
    with hub.sessions() as session, session.begin():
        applied = _apply(
            session,
            entry.id,
            owner,
            status=OutboxStatus.delivered,
            ehr_resource_id=ehr_id,
            delivered_at=now,
            last_status_code=status_code,
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=None,
            updated_at=now,
        )
        if applied:
            detail: dict[str, object] = {"to": "delivered", "how": how, "attempts": entry.attempts}
            if ehr_id:
                detail["ehr_id"] = ehr_id
            _audit(session, entry, "delivery.delivered", audit.Outcome.success, detail, status_code)
    return applied


def mark_retry(hub: Hub, entry: OutboxSnapshot, owner: str, failure: Failure, delay_s: float) -> bool:
    now = utcnow()
    with hub.sessions() as session, session.begin():
        applied = _apply(
            session,
            entry.id,
            owner,
            status=OutboxStatus.pending,
            next_attempt_at=now + timedelta(seconds=max(0.0, delay_s)),
            last_error=failure.text,
            last_status_code=failure.status_code,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
        if applied:
            _audit(
                session,
                entry,
                "delivery.retry_scheduled",
                audit.Outcome.failure,
                {
                    "to": "pending",
                    "error": failure.error_code,
                    "delay_s": round(delay_s, 1),
                    "attempts": entry.attempts,
                },
                failure.status_code,
            )
    return applied


def mark_dead(hub: Hub, entry: OutboxSnapshot, owner: str, failure: Failure, reason: DeadReason) -> bool:
    now = utcnow()
    with hub.sessions() as session, session.begin():
        applied = _apply(
            session,
            entry.id,
            owner,
            status=OutboxStatus.dead,
            dead_reason=reason.value,
            last_error=failure.text,
            last_status_code=failure.status_code,
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=None,
            updated_at=now,
        )
        if applied:
            _audit(
                session,
                entry,
                "delivery.dead_lettered",
                audit.Outcome.failure,
                {"to": "dead", "reason": reason.value, "error": failure.error_code, "attempts": entry.attempts},
                failure.status_code,
            )
    return applied
