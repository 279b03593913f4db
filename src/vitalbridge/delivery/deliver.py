"""``deliver(hub, outbox_id)``: the one delivery function every trigger calls (SPEC §7, DESIGN 1-2).

The in-process worker, ``vitalbridge worker`` processes and Celery tasks differ only in how they
learn that a row is due. This function

1. claims the row (unless the caller already holds its lease),
2. sends it on the practice's channel (FHIR conditional create, or ORU^R01 over MLLP), with the
   quick in-call retries of ``policy.RetryPolicy`` and a search by identifier before any retry
   after an ambiguous failure (and before sending a row that was claimed before),
3. records the outcome in one transaction: ``delivered`` with the EHR id, back to ``pending``
   with a growing delay, or ``dead`` with the reason (``policy.RULES``).

No database transaction is held across a network call (the EHR client writes its own audit,
token and rate-limit rows). Synchronous and thread-safe: run it in a thread from asyncio.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from vitalbridge.db.base import utcnow
from vitalbridge.delivery import fhir_send, hl7_send, metrics
from vitalbridge.delivery.claims import claim_one
from vitalbridge.delivery.models import OutboxEntry, OutboxStatus
from vitalbridge.delivery.policy import Action, RetryPolicy, classify
from vitalbridge.delivery.relink import on_patient_not_found
from vitalbridge.delivery.transitions import (
    DeadReason,
    Failure,
    OutboxSnapshot,
    mark_dead,
    mark_delivered,
    mark_retry,
)
from vitalbridge.ehr import call_meter
from vitalbridge.ehr.client import ehr_client
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.errors import (
    ConfigurationError,
    EhrAuthError,
    EhrDataRejected,
    EhrForbidden,
    EhrPracticeSetup,
    EhrRateLimited,
    EhrUnsupported,
    RateLimited,
    UpstreamError,
    VitalbridgeError,
)
from vitalbridge.hl7v2.errors import Hl7Nak
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import DeliveryChannel, Practice

log = logging.getLogger(__name__)

_CAPS = "delivery_capabilities"


@dataclass(frozen=True)
class Outcome:
    status: str  # delivered, retry, dead, skipped
    ehr_id: str | None = None


SKIPPED = Outcome("skipped")
# What one send attempt returns: the EHR id (or ACK control id), the status, how it got there.
Attempted = tuple[str | None, int, str]


def worker_id() -> str:
    """A lease owner name: host, process and a random part (two workers never share one)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def deliver(
    hub: Hub, outbox_id: str, *, owner: str | None = None, sleep: Callable[[float], None] = time.sleep
) -> Outcome:
    """Deliver one outbox row. With ``owner`` the caller has claimed it; without, it is claimed here
    (a row that is not pending and due is left alone: ``skipped``)."""
    if owner is None:
        owner = worker_id()
        if not claim_one(hub, outbox_id, owner):
            return SKIPPED
    loaded = _load(hub, outbox_id, owner)
    if loaded is None:
        return SKIPPED
    entry, conn = loaded
    with call_meter.metering() as calls:
        outcome = _attempt(hub, entry, conn, owner, sleep)
    # eCW's 250/min includes token calls and the searches that stand in for conditional create.
    metrics.ehr_calls(entry.practice_id, calls, delivered=outcome.status == "delivered")
    return outcome


def _attempt(
    hub: Hub,
    entry: OutboxSnapshot,
    conn: PracticeConnection | None,
    owner: str,
    sleep: Callable[[float], None],
) -> Outcome:
    policy = RetryPolicy.from_settings(hub.settings)
    pause = sleep
    try:
        if entry.channel == DeliveryChannel.hl7v2.value:

            def hl7_attempt(_look_first: bool) -> Attempted:
                ack = hl7_send.send(
                    hub, entry.practice_id or "", entry.patient_id, entry.measurement_id, entry.resource
                )
                return ack, 200, "hl7_ack"

            # MLLP has no search: a resend carries the same control id, which receivers dedupe on.
            ack_id, status, how = _with_quick_retries(policy, pause, hl7_attempt, looked=False)
            return _delivered(hub, entry, owner, fhir_send.Sent(ack_id, status, how))
        if conn is None:
            raise ConfigurationError("the row has no practice")
        sent = _send_fhir(hub, entry, conn, policy, pause)
        return _delivered(hub, entry, owner, sent)
    except Exception as exc:  # noqa: BLE001 - every failure is classified by the policy table
        return _failed(hub, entry, owner, exc, policy)


# -- sending -----------------------------------------------------------------------------------


def _send_fhir(
    hub: Hub, entry: OutboxSnapshot, conn: PracticeConnection, policy: RetryPolicy, pause: Callable[[float], None]
) -> fhir_send.Sent:
    client = ehr_client(hub)
    caps = _capabilities(hub)

    def attempt(look_first: bool) -> Attempted:
        conditional = caps.conditional_create(client, conn, entry.id)
        # Only a send that may already have happened needs a search: a retry after an ambiguous
        # failure, or a row claimed before. A first send of a fresh row cannot have been stored,
        # so it goes straight to create, even without conditional create (eCW): a search there
        # would double the calls per Observation against the practice's 250/min.
        if look_first:
            try:
                found = fhir_send.find(client, conn, entry.idempotency_key, entry.id)
            except EhrForbidden:
                # No read scope: conditional create is then the only guard against duplicates.
                if not conditional:
                    raise
                found = None
            if found is not None:
                return found, 200, "found"
        sent = fhir_send.create(
            client, conn, dict(entry.resource), entry.idempotency_key, conditional=conditional, correlation_id=entry.id
        )
        ehr_id = sent.ehr_id
        if ehr_id is None:
            ehr_id = fhir_send.find(client, conn, entry.idempotency_key, entry.id)
        return ehr_id, sent.status_code, sent.how

    # A row claimed before may already be in the EHR (its worker died after the 201).
    ehr_id, status, how = _with_quick_retries(policy, pause, attempt, looked=entry.attempts > 1)
    return fhir_send.Sent(ehr_id, status, how)


def _with_quick_retries(
    policy: RetryPolicy,
    pause: Callable[[float], None],
    attempt: Callable[[bool], Attempted],
    *,
    looked: bool,
) -> Attempted:
    look_first = looked
    retry = 0
    while True:
        try:
            return attempt(look_first)
        except Exception as exc:
            rule = classify(exc)
            if rule.action is not Action.retry or retry >= policy.quick_retries:
                raise
            retry += 1
            look_first = look_first or rule.ambiguous
            pause(policy.quick_delay(retry))


# -- outcomes ----------------------------------------------------------------------------------


def _delivered(hub: Hub, entry: OutboxSnapshot, owner: str, sent: fhir_send.Sent) -> Outcome:
    if not mark_delivered(hub, entry, owner, ehr_id=sent.ehr_id, status_code=sent.status_code, how=sent.how):
        # Our lease was swept and another worker owns the row: it will find the resource by identifier.
        return SKIPPED
    metrics.delivered(entry.practice_id, sent.how, _measured_at(entry))
    return Outcome("delivered", sent.ehr_id)


def _failure_of(exc: BaseException) -> Failure:
    if isinstance(exc, VitalbridgeError):
        status = exc.status_code if isinstance(exc, UpstreamError) else 429 if isinstance(exc, EhrRateLimited) else None
        diagnostics = exc.diagnostics if isinstance(exc, UpstreamError) else None
        if isinstance(exc, Hl7Nak) and exc.text:
            diagnostics = exc.text
        return Failure(exc.error_code, exc.message, status, diagnostics)
    # A defect: the type name only (an arbitrary exception's text may quote data).
    return Failure("internal_error", type(exc).__name__)


def _failed(hub: Hub, entry: OutboxSnapshot, owner: str, exc: BaseException, policy: RetryPolicy) -> Outcome:
    rule = classify(exc)
    failure = _failure_of(exc)
    log.info(
        "delivery failed outbox=%s practice=%s error=%s status=%s action=%s",
        entry.id,
        entry.practice_id,
        failure.error_code,
        failure.status_code,
        rule.action.value,
    )
    if rule.action is Action.relink:
        changed = on_patient_not_found(hub, entry, owner, failure)
        return _count(entry, "dead", changed)
    if rule.action is Action.dead:
        reason = (
            DeadReason.practice_setup
            if isinstance(exc, EhrPracticeSetup)
            else DeadReason.invalid_data
            if isinstance(exc, EhrDataRejected)
            else DeadReason.auth_failed
            if isinstance(exc, EhrAuthError)
            else DeadReason.hl7_rejected
            if isinstance(exc, Hl7Nak)
            else DeadReason.configuration
            if isinstance(exc, (ConfigurationError, EhrUnsupported))
            else DeadReason.rejected
        )
        return _count(entry, "dead", mark_dead(hub, entry, owner, failure, reason))
    age = (utcnow() - entry.age_from).total_seconds()
    if policy.expired(age):
        return _count(entry, "dead", mark_dead(hub, entry, owner, failure, DeadReason.max_age))
    if rule.action is Action.wait and isinstance(exc, RateLimited):
        delay = max(exc.retry_after, 0.0)
        metrics.RATE_LIMITED.labels(entry.practice_id or "").inc()
    else:
        delay = policy.requeue_delay(entry.attempts)
    return _count(entry, "retry", mark_retry(hub, entry, owner, failure, delay), failure.status_code)


def _count(entry: OutboxSnapshot, status: str, applied: bool, status_code: int | None = None) -> Outcome:
    if not applied:
        return SKIPPED
    metrics.DELIVERIES.labels(entry.practice_id or "", status, metrics.status_class(status_code)).inc()
    return Outcome(status)


# -- loading -----------------------------------------------------------------------------------


def _load(hub: Hub, outbox_id: str, owner: str) -> tuple[OutboxSnapshot, PracticeConnection | None] | None:
    with hub.sessions() as session:
        row = session.get(OutboxEntry, outbox_id)
        if row is None or row.status is not OutboxStatus.in_flight or row.lease_owner != owner:
            return None
        practice = session.get(Practice, row.practice_id) if row.practice_id else None
        snapshot = OutboxSnapshot(
            id=row.id,
            organization_id=row.organization_id,
            practice_id=row.practice_id,
            patient_id=row.patient_id,
            measurement_id=row.measurement_id,
            channel=row.channel.value,
            resource=dict(row.resource),
            idempotency_key=row.idempotency_key,
            attempts=row.attempts,
            age_from=row.retry_since or row.created_at,
        )
        return snapshot, PracticeConnection.of(practice) if practice is not None else None


def _capabilities(hub: Hub) -> fhir_send.Capabilities:
    caps = hub.extras.get(_CAPS)
    if not isinstance(caps, fhir_send.Capabilities):
        caps = fhir_send.Capabilities(hub.settings.delivery_capability_ttl_s)
        hub.extras[_CAPS] = caps
    return caps


def _measured_at(entry: OutboxSnapshot) -> datetime | None:
    value = entry.resource.get("effectiveDateTime")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
