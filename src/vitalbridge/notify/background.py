"""The push service (SPEC §6, §8): dispatch alert events, escalate, send — with an injectable clock.

``run_once(hub, now=…)`` is one pass of all three steps; the background loop (registered with
``vitalbridge.lifecycle``, so ``vitalbridge serve`` / ``make run`` run it in-process unless
``VB_INPROCESS_WORKER=false``) calls it every ``VB_PUSH_SWEEP_INTERVAL_S`` with the real time,
``vitalbridge notify run`` runs the same loop as its own process, and tests call ``run_once``
with any ``now``. Without ``VB_FCM_CREDENTIALS_FILE`` pushes are queued but not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime

from vitalbridge import lifecycle
from vitalbridge.db.base import utcnow
from vitalbridge.errors import VitalbridgeError
from vitalbridge.notify.dispatch import DispatchSummary, dispatch_events
from vitalbridge.notify.escalation import EscalationSummary, escalate_overdue
from vitalbridge.notify.fcm import FcmSender, ServiceAccount
from vitalbridge.notify.sender import SendSummary, send_due
from vitalbridge.observability.logging import get_logger
from vitalbridge.runtime import Hub
from vitalbridge.security.outbound import OutboundPolicy, guarded_transport
from vitalbridge.settings import Settings

log = get_logger(__name__)
_SENDER_KEY = "notify.fcm_sender"


@dataclass
class PassSummary:
    escalation: EscalationSummary
    dispatch: DispatchSummary
    send: SendSummary | None  # None: FCM is not configured


def build_sender(settings: Settings, policy: OutboundPolicy | None = None) -> FcmSender | None:
    if settings.fcm_credentials_file is None:
        return None
    account = ServiceAccount.load(settings.fcm_credentials_file)
    # The FCM endpoint and the service account's token_uri are configuration: both are checked
    # at connect time like every other outbound URL.
    policy = policy or OutboundPolicy.from_settings(settings)
    return FcmSender(
        account,
        endpoint=settings.fcm_endpoint,
        project_id=settings.fcm_project_id,
        timeout_s=settings.fcm_timeout_s,
        transport=guarded_transport(policy),
    )


def sender_of(hub: Hub) -> FcmSender | None:
    """The hub's one sender (its access-token cache is shared by every pass)."""
    sender = hub.extras.get(_SENDER_KEY)
    if isinstance(sender, FcmSender):
        return sender
    built = build_sender(hub.settings, hub.outbound_policy)
    if built is not None:
        hub.extras[_SENDER_KEY] = built
    return built


def close_sender(hub: Hub) -> None:
    sender = hub.extras.pop(_SENDER_KEY, None)
    if isinstance(sender, FcmSender):
        sender.close()


def escalate(hub: Hub, *, now: datetime, organization_id: str | None = None) -> EscalationSummary:
    with hub.sessions() as session, session.begin():
        return escalate_overdue(session, hub.settings, now=now, organization_id=organization_id)


def dispatch(hub: Hub, *, now: datetime) -> DispatchSummary:
    total = DispatchSummary()
    while True:
        with hub.sessions() as session, session.begin():
            part = dispatch_events(session, hub.settings, now=now)
        total.events += part.events
        total.queued += part.queued
        total.deferred += part.deferred
        total.unrouted += part.unrouted
        if part.events == 0:
            return total


def send(hub: Hub, *, now: datetime) -> SendSummary | None:
    sender = sender_of(hub)
    if sender is None:
        return None
    total = SendSummary()
    while True:
        part = send_due(hub, sender, now=now)
        for name in ("claimed", "sent", "retried", "pruned", "dead", "cancelled", "requeued"):
            setattr(total, name, getattr(total, name) + getattr(part, name))
        total.outcomes += part.outcomes
        if part.claimed == 0:
            return total


def run_once(hub: Hub, *, now: datetime | None = None, escalation: bool = True) -> PassSummary:
    """Escalate overdue alerts, turn new alert events into pushes, send what is due."""
    when = now or utcnow()
    esc = escalate(hub, now=when) if escalation else EscalationSummary()
    return PassSummary(esc, dispatch(hub, now=when), send(hub, now=when))


async def run_loop(hub: Hub, *, stop: asyncio.Event | None = None) -> None:
    settings = hub.settings
    next_escalation = 0.0
    warned = False
    while stop is None or not stop.is_set():
        try:
            due = time.monotonic() >= next_escalation
            summary = await asyncio.to_thread(run_once, hub, escalation=due)
            if due:
                next_escalation = time.monotonic() + settings.escalation_check_interval_s
            if summary.send is None and summary.dispatch.queued and not warned:
                log.warning("push.not_configured", hint="set VB_FCM_CREDENTIALS_FILE; pushes wait in the outbox")
                warned = True
        except VitalbridgeError as exc:
            # Our errors carry ids and codes only, and say what to fix (e.g. the FCM credentials file).
            log.warning("push.loop_error", error=type(exc).__name__, detail=str(exc))
        except Exception as exc:  # noqa: BLE001 - the loop must outlive a bad pass or a DB blip
            log.warning("push.loop_error", error=type(exc).__name__)
        await asyncio.sleep(settings.push_sweep_interval_s)


async def start(hub: Hub) -> lifecycle.Stop:
    if not hub.settings.inprocess_worker:

        async def noop() -> None:
            return None

        return noop
    task = asyncio.create_task(run_loop(hub), name="push")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        close_sender(hub)

    return stop


lifecycle.register("push", start)
