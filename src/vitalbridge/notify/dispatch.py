"""From alert events to queued pushes (SPEC §6, §8; the feed contract in docs/architecture-readings.md).

``dispatch_events`` claims ``alert_events`` rows with ``dispatched_at IS NULL`` in ``seq`` order
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL), queues ``push_outbox`` rows, and sets
``dispatched_at`` — all in one transaction, so an event is turned into pushes exactly once.

Policy — which events make a push:

    opened                          open_alert       to the assignee, else the on-call list
    escalated (by notify.escalation) alert_escalated  to the escalation targets
    resolved                        alert_resolved   to everyone told before, else as opened
    updated, escalated (severity),  nothing          a repeat breach is not news: one push when an
    acknowledged, assigned                           alert opens, one when it resolves

Quiet hours defer every push except a critical alert's open/escalation push. Events older than
``VB_PUSH_MAX_AGE_HOURS`` (say, a backlog from before push was configured) are marked dispatched
without a push: a stale alert on a lock screen helps nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.notify import quiet, registry, routing
from vitalbridge.notify.codes import AlertType, PushAction, PushStatus
from vitalbridge.notify.models import AlertEscalation, PushOutbox
from vitalbridge.observability.logging import get_logger
from vitalbridge.settings import Settings
from vitalbridge.triage.codes import AlertEventKind, Severity
from vitalbridge.triage.models import Alert, AlertEvent

log = get_logger(__name__)
PUSH_ACTOR = Actor.service("push")


@dataclass
class DispatchSummary:
    events: int = 0
    queued: int = 0
    deferred: int = 0
    unrouted: int = 0


def action_for(session: Session, event: AlertEvent) -> PushAction | None:
    if event.kind is AlertEventKind.opened:
        return PushAction.open_alert
    if event.kind is AlertEventKind.resolved:
        return PushAction.alert_resolved
    if event.kind is AlertEventKind.escalated:
        # Triage also writes ``escalated`` when a breach raises the severity: only the
        # escalation this feature recorded (it remembers the event) notifies anyone.
        mine = session.scalar(select(AlertEscalation.alert_id).where(AlertEscalation.event_seq == event.seq))
        return PushAction.alert_escalated if mine is not None else None
    return None


def _recipients(session: Session, event: AlertEvent, alert: Alert, action: PushAction, settings: Settings) -> list[str]:
    if action is PushAction.open_alert:
        return routing.new_alert_recipients(session, alert, settings)
    if action is PushAction.alert_escalated:
        row = session.get(AlertEscalation, alert.id)
        return list(row.target_user_ids) if row else []
    return routing.already_told(session, alert.id) or routing.new_alert_recipients(session, alert, settings)


def _unrouted(session: Session, event: AlertEvent, action: PushAction, reason: str) -> None:
    log.warning("push.unrouted", alert_id=event.alert_id, action=action.value, reason=reason)
    record(
        session,
        action="push.unrouted",
        outcome=Outcome.failure,
        actor=PUSH_ACTOR,
        organization_id=event.organization_id,
        resource_type="Alert",
        resource_ids=[event.alert_id],
        detail={"push_action": action.value, "severity": event.severity.value, "reason": reason},
    )


def bypasses_quiet_hours(action: PushAction, severity: Severity) -> bool:
    return severity is Severity.critical and action in (PushAction.open_alert, PushAction.alert_escalated)


def enqueue(
    session: Session, event: AlertEvent, alert: Alert, action: PushAction, settings: Settings, *, now: datetime
) -> DispatchSummary:
    summary = DispatchSummary()
    users = _recipients(session, event, alert, action, settings)
    if not users:
        if action is not PushAction.alert_resolved:
            _unrouted(session, event, action, "no_recipient")
            summary.unrouted += 1
        return summary
    devices = [d for d in registry.active_devices(session, users) if d.organization_id == event.organization_id]
    if not devices:
        if action is not PushAction.alert_resolved:
            _unrouted(session, event, action, "no_device")
            summary.unrouted += 1
        return summary
    windows: dict[str, datetime | None] = {}
    for device in devices:
        exists = session.scalar(
            select(PushOutbox.id).where(
                PushOutbox.alert_id == alert.id, PushOutbox.action == action, PushOutbox.device_id == device.id
            )
        )
        if exists is not None:
            continue  # one push per alert, action and device, whatever happens upstream
        if device.user_id not in windows:
            window = None
            if not bypasses_quiet_hours(action, event.severity):
                window = quiet.window_for(session, event.organization_id, device.user_id)
            windows[device.user_id] = window.quiet_until(now) if window else None
        deferred_until = windows[device.user_id]
        session.add(
            PushOutbox(
                organization_id=event.organization_id,
                user_id=device.user_id,
                device_id=device.id,
                alert_id=alert.id,
                event_seq=event.seq,
                action=action,
                alert_type=AlertType.of_rule(event.rule_code),
                severity=event.severity,
                status=PushStatus.pending,
                attempts=0,
                next_attempt_at=deferred_until or now,
                deferred_until=deferred_until,
                created_at=now,
                updated_at=now,
            )
        )
        summary.queued += 1
        summary.deferred += 1 if deferred_until else 0
    session.flush()
    return summary


def dispatch_events(session: Session, settings: Settings, *, now: datetime, limit: int = 100) -> DispatchSummary:
    """Turn up to ``limit`` undispatched alert events into queued pushes (one transaction: the caller's)."""
    events = list(
        session.scalars(
            select(AlertEvent)
            .where(AlertEvent.dispatched_at.is_(None))
            .order_by(AlertEvent.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    total = DispatchSummary(events=len(events))
    oldest = now - timedelta(hours=settings.push_max_age_hours)
    for event in events:
        action = action_for(session, event)
        alert = session.get(Alert, event.alert_id) if action else None
        if action is not None and alert is not None and event.occurred_at >= oldest:
            part = enqueue(session, event, alert, action, settings, now=now)
            total.queued += part.queued
            total.deferred += part.deferred
            total.unrouted += part.unrouted
        event.dispatched_at = now
    session.flush()
    return total
