"""Send what is due in the push outbox (SPEC §8): claim, sanitize, send, record.

``send_due(hub, fcm, now=…)`` runs one pass: requeue expired leases, claim due rows, and for
each build the message through ``notify.sanitizer`` (the only way a message is made), send it
with ``FcmSender`` outside any database transaction, then record the outcome and an audit entry
(``push.sent`` / ``push.failed`` — ids and codes only, never the token or PHI) in one transaction.

Before sending, a push that no longer makes sense is cancelled instead: its device was pruned
or removed, an escalation whose alert was acknowledged meanwhile, a "new alert" push for an
alert already resolved (its "resolved" push still goes), or one older than
``VB_PUSH_MAX_AGE_HOURS`` (say, queued while FCM was not configured).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from vitalbridge.audit import Outcome, record
from vitalbridge.crypto.sealing import Sealer
from vitalbridge.notify import outbox, registry
from vitalbridge.notify.codes import PushAction, PushStatus, SendOutcome, TokenStatus
from vitalbridge.notify.dispatch import PUSH_ACTOR
from vitalbridge.notify.fcm import FcmSender, SendResult
from vitalbridge.notify.metrics import PUSHES
from vitalbridge.notify.models import PushDevice, PushOutbox
from vitalbridge.notify.sanitizer import PushNotice, UnsafePushPayload, build_message
from vitalbridge.observability.context import correlation_scope
from vitalbridge.observability.logging import get_logger
from vitalbridge.runtime import Hub
from vitalbridge.triage.codes import AlertStatus
from vitalbridge.triage.models import Alert

log = get_logger(__name__)


@dataclass
class SendSummary:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    pruned: int = 0
    dead: int = 0
    cancelled: int = 0
    requeued: int = 0
    outcomes: list[str] = field(default_factory=list)


def _moot(row: PushOutbox, alert: Alert | None, device: PushDevice | None, *, expired: bool) -> str | None:
    if expired:
        return "expired"  # e.g. queued while FCM was not configured: old news by now
    if device is None or device.status is not TokenStatus.active:
        return "device_inactive"
    if alert is None:
        return "alert_deleted"
    if row.action is PushAction.alert_escalated and alert.status is not AlertStatus.open:
        return f"alert_{alert.status.value}"
    if row.action is PushAction.open_alert and alert.status is AlertStatus.resolved:
        return "alert_resolved"
    return None


def _audit(session: Session, row: PushOutbox, device: PushDevice | None, result: SendResult, latency_ms: float) -> None:
    ok = result.outcome is SendOutcome.sent
    detail: dict[str, Any] = {
        "push_action": row.action.value,
        "alert_type": row.alert_type.value,
        "severity": row.severity.value,
        "device_id": row.device_id,
        "user_id": row.user_id,
        "attempt": row.attempts,
        "outcome": result.outcome.value,
    }
    if device is not None:
        detail["platform"] = device.platform.value
    if result.error_code:
        detail["error_code"] = result.error_code
    if result.outcome is SendOutcome.retry:
        detail["next_attempt_at"] = row.next_attempt_at.isoformat()
    record(
        session,
        action="push.sent" if ok else "push.failed",
        outcome=Outcome.success if ok else Outcome.failure,
        actor=PUSH_ACTOR,
        organization_id=row.organization_id,
        resource_type="Alert",
        resource_ids=[row.alert_id],
        status_code=result.status_code,
        latency_ms=round(latency_ms, 1),
        detail=detail,
    )


def message_for(row: PushOutbox, device: PushDevice, sealer: Sealer) -> dict[str, Any]:
    """The FCM message for one queued push: codes from the row, the device's token, the sanitizer."""
    notice = PushNotice.of(
        alert_id=row.alert_id, rule_code=row.alert_type.value, severity=row.severity, action=row.action
    )
    return build_message(notice, registry.open_token(sealer, device))


def _prepare(hub: Hub, row_id: str, owner: str, now: datetime) -> tuple[dict[str, Any] | None, str | None]:
    """In its own transaction: the message for a claimed row, or why it was cancelled."""
    with hub.sessions() as session, session.begin():
        row = outbox.still_mine(session, row_id, owner)
        if row is None:
            return None, "lease_lost"
        device = session.get(PushDevice, row.device_id)
        alert = session.get(Alert, row.alert_id)
        expired = now - row.created_at >= timedelta(hours=hub.settings.push_max_age_hours)
        if expired and row.last_error:
            # FCM kept failing it (a retry was due): give up, as a failure.
            hours = hub.settings.push_max_age_hours
            outbox.finish(row, PushStatus.dead, now=now, error=f"{row.last_error}: gave up after {hours} h")
            return None, "gave_up"
        moot = _moot(row, alert, device, expired=expired)
        if moot is not None or device is None:
            outbox.finish(row, PushStatus.cancelled, now=now, error=moot)
            return None, moot
        try:
            return message_for(row, device, hub.sealer), None
        except UnsafePushPayload as exc:
            outbox.finish(row, PushStatus.dead, now=now, error=f"unsafe payload refused: {exc}")
            log.error("push.unsafe_payload", push_id=row.id, error=str(exc))
            return None, "unsafe_payload"


def _record(
    hub: Hub, row_id: str, owner: str, result: SendResult, latency_ms: float, summary: SendSummary, now: datetime
) -> None:
    max_age = timedelta(hours=hub.settings.push_max_age_hours)
    with hub.sessions() as session, session.begin():
        row = outbox.still_mine(session, row_id, owner)
        if row is None:
            return  # the lease ran out and another sender owns the row now; it records its own attempt
        device = session.get(PushDevice, row.device_id)
        outcome = result.outcome
        error = result.error_code or outcome.value
        if outcome is SendOutcome.sent:
            outbox.finish(row, PushStatus.sent, now=now)
            row.fcm_message_name = result.message_name
            summary.sent += 1
        elif outcome is SendOutcome.prune_token:
            outbox.finish(row, PushStatus.dead, now=now, error=error)
            if device is not None:
                summary.cancelled += registry.prune(session, device, reason=error.lower(), now=now, actor=PUSH_ACTOR)
            summary.pruned += 1
        elif outcome is SendOutcome.retry and now - row.created_at < max_age:
            outbox.retry_later(row, now=now, retry_after_s=result.retry_after_s, error=error)
            summary.retried += 1
        else:
            if outcome is SendOutcome.retry:
                error = f"{error}: gave up after {hub.settings.push_max_age_hours} h"
            outbox.finish(row, PushStatus.dead, now=now, error=error)
            summary.dead += 1
            log.error(
                "push.failed_permanently",
                push_id=row.id,
                error_code=result.error_code,
                status_code=result.status_code,
                hint=result.operator_message,
            )
        row.last_status_code = result.status_code
        _audit(session, row, device, result, latency_ms)
        PUSHES.labels(row.action.value, outcome.value).inc()
        summary.outcomes.append(outcome.value)


def send_due(hub: Hub, fcm: FcmSender, *, now: datetime, limit: int = 20, owner: str | None = None) -> SendSummary:
    """One pass over the due pushes. ``now`` is injectable for tests and the CLI."""
    owner = owner or f"push-{uuid.uuid4().hex[:12]}"
    summary = SendSummary()
    with hub.sessions() as session, session.begin():
        summary.requeued = outbox.requeue_expired(session, now=now)
        claimed = [
            r.id for r in outbox.claim(session, owner=owner, now=now, lease_s=hub.settings.push_lease_s, limit=limit)
        ]
    summary.claimed = len(claimed)
    for row_id in claimed:
        with correlation_scope():
            message, skipped = _prepare(hub, row_id, owner, now)
            if message is None:
                if skipped in ("unsafe_payload", "gave_up"):
                    summary.dead += 1
                elif skipped != "lease_lost":
                    summary.cancelled += 1
                continue
            started = time.perf_counter()
            result = fcm.send(message)
            _record(hub, row_id, owner, result, (time.perf_counter() - started) * 1000, summary, now)
    return summary
