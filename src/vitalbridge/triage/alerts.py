"""Every alert state change goes through here (SPEC §6).

Each function changes the alert, appends one ``alert_events`` row (the history and the feed the
push feature consumes) and, for status changes, one audit entry — all in the caller's
transaction, so an alert, its event and the reading that caused it commit together.

Transitions::

    (none) ──opened──▶ open ──acknowledged──▶ acknowledged
                        │                          │
                        └──────────resolved────────┴──▶ resolved

A breach of a rule with an unresolved alert for the same patient folds into it (``updated``,
or ``escalated`` when the severity rises) instead of opening another one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.errors import Conflict, NotFound
from vitalbridge.patients.models import Patient, Provider
from vitalbridge.tenancy.models import User
from vitalbridge.triage.codes import AlertEventKind, AlertStatus, Severity
from vitalbridge.triage.models import Alert, AlertEvent

# Enough to show the recent pattern on the dashboard; ``occurrences`` keeps the full count.
MAX_READING_IDS = 20


@dataclass(frozen=True)
class Change:
    alert: Alert
    event: AlertEvent


def _event(
    session: Session,
    alert: Alert,
    kind: AlertEventKind,
    *,
    actor: str,
    at: datetime,
    from_status: AlertStatus | None,
    reading_id: str | None = None,
    note: str | None = None,
) -> AlertEvent:
    ev = AlertEvent(
        alert_id=alert.id,
        organization_id=alert.organization_id,
        patient_id=alert.patient_id,
        kind=kind,
        rule_code=alert.rule_code,
        severity=alert.severity,
        from_status=from_status,
        to_status=alert.status,
        actor=actor,
        reading_id=reading_id,
        assignee_user_id=alert.assignee_user_id,
        note=note,
        occurred_at=at,
    )
    session.add(ev)
    return ev


def _audit(session: Session, alert: Alert, kind: AlertEventKind, actor: str) -> None:
    record(
        session,
        action=f"alert.{kind.value}",
        outcome=Outcome.success,
        actor=actor,
        organization_id=alert.organization_id,
        resource_type="Alert",
        resource_ids=[alert.id],
        detail={
            "rule_code": alert.rule_code,
            "severity": alert.severity.value,
            "status": alert.status.value,
            "patient_id": alert.patient_id,
        },
    )


def _default_assignee(session: Session, patient_id: str) -> str | None:
    """The hub user behind the patient's provider, if any: they get the push (SPEC §6)."""
    return session.scalar(
        select(Provider.user_id).join(Patient, Patient.provider_id == Provider.id).where(Patient.id == patient_id)
    )


def unresolved(session: Session, patient_id: str, rule_code: str) -> Alert | None:
    return session.scalar(
        select(Alert)
        .where(Alert.patient_id == patient_id, Alert.rule_code == rule_code, Alert.status != AlertStatus.resolved)
        .with_for_update()
    )


def open_or_update(
    session: Session,
    *,
    organization_id: str,
    patient_id: str,
    rule_code: str,
    severity: Severity,
    at: datetime,
    actor: Actor | str,
    reading_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> Change:
    """Raise an alert for this patient and rule, or fold the breach into the unresolved one."""
    who = str(actor)
    alert = unresolved(session, patient_id, rule_code)
    if alert is None:
        alert = Alert(
            organization_id=organization_id,
            patient_id=patient_id,
            rule_code=rule_code,
            severity=severity,
            status=AlertStatus.open,
            assignee_user_id=_default_assignee(session, patient_id),
            occurrences=1,
            first_reading_id=reading_id,
            last_reading_id=reading_id,
            reading_ids=[reading_id] if reading_id else [],
            detail=dict(detail or {}),
            opened_at=at,
            updated_at=at,
        )
        session.add(alert)
        session.flush()
        ev = _event(session, alert, AlertEventKind.opened, actor=who, at=at, from_status=None, reading_id=reading_id)
        _audit(session, alert, AlertEventKind.opened, who)
        return Change(alert, ev)

    alert.occurrences += 1
    if reading_id:
        alert.last_reading_id = reading_id
        alert.reading_ids = [*alert.reading_ids, reading_id][-MAX_READING_IDS:]
    if detail is not None:
        alert.detail = dict(detail)
    alert.updated_at = at
    kind = AlertEventKind.updated
    if severity.rank > alert.severity.rank:
        alert.severity = severity
        kind = AlertEventKind.escalated
    ev = _event(session, alert, kind, actor=who, at=at, from_status=alert.status, reading_id=reading_id)
    if kind is AlertEventKind.escalated:
        _audit(session, alert, kind, who)
    return Change(alert, ev)


def get_alert(session: Session, organization_id: str, alert_id: str, *, for_update: bool = False) -> Alert:
    q = select(Alert).where(Alert.id == alert_id, Alert.organization_id == organization_id)
    alert = session.scalar(q.with_for_update() if for_update else q)
    if alert is None:
        raise NotFound("no such alert in this organization")
    return alert


def acknowledge(
    session: Session, *, organization_id: str, alert_id: str, actor: Actor | str, at: datetime, note: str | None = None
) -> Change:
    alert = get_alert(session, organization_id, alert_id, for_update=True)
    if alert.status is not AlertStatus.open:
        raise Conflict(f"alert is {alert.status.value}; only an open alert can be acknowledged")
    who = str(actor)
    alert.status = AlertStatus.acknowledged
    alert.acknowledged_at = at
    alert.acknowledged_by = who
    alert.updated_at = at
    ev = _event(session, alert, AlertEventKind.acknowledged, actor=who, at=at, from_status=AlertStatus.open, note=note)
    _audit(session, alert, AlertEventKind.acknowledged, who)
    return Change(alert, ev)


def resolve(
    session: Session, *, organization_id: str, alert_id: str, actor: Actor | str, at: datetime, note: str | None = None
) -> Change:
    alert = get_alert(session, organization_id, alert_id, for_update=True)
    if alert.status is AlertStatus.resolved:
        raise Conflict("alert is already resolved")
    who = str(actor)
    before = alert.status
    alert.status = AlertStatus.resolved
    alert.resolved_at = at
    alert.resolved_by = who
    alert.updated_at = at
    ev = _event(session, alert, AlertEventKind.resolved, actor=who, at=at, from_status=before, note=note)
    _audit(session, alert, AlertEventKind.resolved, who)
    return Change(alert, ev)


def assign(
    session: Session,
    *,
    organization_id: str,
    alert_id: str,
    assignee_user_id: str | None,
    actor: Actor | str,
    at: datetime,
) -> Change:
    alert = get_alert(session, organization_id, alert_id, for_update=True)
    if alert.status is AlertStatus.resolved:
        raise Conflict("a resolved alert cannot be reassigned")
    if assignee_user_id is not None:
        user = session.scalar(
            select(User.id).where(User.id == assignee_user_id, User.organization_id == organization_id)
        )
        if user is None:
            raise NotFound("no such user in this organization")
    who = str(actor)
    alert.assignee_user_id = assignee_user_id
    alert.updated_at = at
    ev = _event(session, alert, AlertEventKind.assigned, actor=who, at=at, from_status=alert.status)
    _audit(session, alert, AlertEventKind.assigned, who)
    return Change(alert, ev)


def record_escalation(
    session: Session, *, organization_id: str, alert_id: str, actor: Actor | str, at: datetime, note: str | None = None
) -> Change:
    """An open alert nobody acknowledged in time was escalated (to an on-call list): an
    ``escalated`` event with status and severity unchanged, plus its audit entry. Who is told
    is the caller's business (``notify.escalation``)."""
    alert = get_alert(session, organization_id, alert_id, for_update=True)
    if alert.status is not AlertStatus.open:
        raise Conflict(f"alert is {alert.status.value}; only an open alert can be escalated")
    who = str(actor)
    ev = _event(session, alert, AlertEventKind.escalated, actor=who, at=at, from_status=alert.status, note=note)
    _audit(session, alert, AlertEventKind.escalated, who)
    session.flush()
    return Change(alert, ev)


def events_after(session: Session, organization_id: str | None, after_seq: int, limit: int = 100) -> list[AlertEvent]:
    """Feed reader for consumers (push): events with ``seq > after_seq`` in order."""
    q = select(AlertEvent).where(AlertEvent.seq > after_seq)
    if organization_id is not None:
        q = q.where(AlertEvent.organization_id == organization_id)
    return list(session.scalars(q.order_by(AlertEvent.seq).limit(limit)))
