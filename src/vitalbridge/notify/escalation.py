"""Escalation of critical alerts nobody acknowledged (SPEC §6).

A critical alert still ``open`` ``VB_ESCALATION_MINUTES`` (or its program's override) after it
became critical is escalated once: ``triage.alerts.record_escalation`` writes an ``escalated``
event and its audit entry, and an ``alert_escalations`` row remembers the event and the targets
(the program's on-call list, else the organization's admins). The push itself is queued by
``notify.dispatch`` from that event, like every other push.

``escalate_overdue(session, settings, now=…)`` takes the clock as an argument: the background
service passes the real time, ``vitalbridge alerts escalate --now …`` and tests any time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vitalbridge.notify import routing
from vitalbridge.notify.dispatch import PUSH_ACTOR
from vitalbridge.notify.models import AlertEscalation
from vitalbridge.settings import Settings
from vitalbridge.triage import alerts
from vitalbridge.triage.codes import AlertStatus, Severity
from vitalbridge.triage.models import Alert, AlertEvent

ESCALATION_ACTOR = PUSH_ACTOR


@dataclass
class EscalationSummary:
    checked: int = 0
    escalated: int = 0


def critical_since(session: Session, alert: Alert) -> datetime:
    """When the alert became critical: its first event at critical severity (it may have been
    opened lower and raised later), else when it opened."""
    at = session.scalar(
        select(func.min(AlertEvent.occurred_at)).where(
            AlertEvent.alert_id == alert.id, AlertEvent.severity == Severity.critical
        )
    )
    return at if isinstance(at, datetime) else alert.opened_at


def escalate_overdue(
    session: Session, settings: Settings, *, now: datetime, organization_id: str | None = None
) -> EscalationSummary:
    q = (
        select(Alert)
        .outerjoin(AlertEscalation, AlertEscalation.alert_id == Alert.id)
        .where(
            Alert.status == AlertStatus.open,
            Alert.severity == Severity.critical,
            AlertEscalation.alert_id.is_(None),
        )
        .order_by(Alert.opened_at, Alert.id)
        .with_for_update(of=Alert, skip_locked=True)
    )
    if organization_id is not None:
        q = q.where(Alert.organization_id == organization_id)
    summary = EscalationSummary()
    for alert in session.scalars(q):
        summary.checked += 1
        policy = routing.policy_for(session, alert, settings)
        if now - critical_since(session, alert) < timedelta(minutes=policy.escalation_minutes):
            continue
        targets = routing.escalation_targets(session, alert, settings)
        change = alerts.record_escalation(
            session,
            organization_id=alert.organization_id,
            alert_id=alert.id,
            actor=ESCALATION_ACTOR,
            at=now,
            note=f"unacknowledged for {policy.escalation_minutes} min",
        )
        session.add(
            AlertEscalation(
                alert_id=alert.id,
                organization_id=alert.organization_id,
                event_seq=change.event.seq,
                escalated_at=now,
                target_user_ids=targets,
            )
        )
        session.flush()
        summary.escalated += 1
    return summary
