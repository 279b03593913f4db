"""Receiving a gateway webhook (SPEC §5), framework-free: headers and bytes in, an answer out.

Order of checks, each failing closed:

1. headers present, gateway known and of this kind, timestamp within the skew window,
   HMAC matches the current (or, during rotation, the previous) secret → else 401, audited;
2. body parses and every field is valid and plausible → else 422 with field errors, the raw
   body kept in quarantine (committed even though the request fails), audited;
3. reading(s), measurements, outbox rows and the audit entry commit in ONE transaction → 202,
   or 200 with the existing reading id when the gateway reading id was seen before with the
   same content; seen before with *different* content → 409 ``reading_id_conflict``, the body
   kept in quarantine (reason ``conflict``), the first reading untouched.

Happy path: one transaction. The refusal and quarantine paths write in a second one because the
first was rolled back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.db.base import utcnow
from vitalbridge.devices import quarantine
from vitalbridge.devices.gateway_service import WebhookRefusal, get_gateway, verify_webhook
from vitalbridge.devices.gateways import GatewayKind, adapter_for
from vitalbridge.devices.ingest import InvalidObservation, ReadingConflict, StoreResult, store_readings
from vitalbridge.devices.metrics import READINGS_RECEIVED
from vitalbridge.devices.models import QuarantineStatus
from vitalbridge.devices.normalize import normalise_reading
from vitalbridge.devices.readings import NormalizedReading, ReadingSource
from vitalbridge.devices.signing import GATEWAY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureProblem
from vitalbridge.errors import Conflict, FieldError, Unauthorized, ValidationFailed
from vitalbridge.runtime import Hub


class ReadingIdConflict(Conflict):
    """409: the reading id is taken by a different reading. Permanent: retrying cannot help."""

    error_code = "reading_id_conflict"


@dataclass(frozen=True)
class WebhookAnswer:
    status_code: int
    body: dict[str, Any]


class Rejected(Exception):
    """The payload was authenticated but cannot be accepted; carries what the quarantine needs."""

    def __init__(self, errors: list[FieldError], gateway_reading_id: str | None = None) -> None:
        super().__init__("rejected")
        self.errors = errors
        self.gateway_reading_id = gateway_reading_id


def parse_and_normalise(kind: GatewayKind, body: bytes, now: datetime) -> list[NormalizedReading]:
    """Raises ``Rejected`` with every field error found."""
    parsed = adapter_for(kind).parse_webhook(body)
    if parsed.errors:
        raise Rejected(parsed.errors)
    out: list[NormalizedReading] = []
    errors: list[FieldError] = []
    for reading in parsed.readings:
        result = normalise_reading(reading, now)
        if isinstance(result, list):
            errors.extend(result)
        else:
            out.append(result)
    if errors:
        raise Rejected(errors, parsed.readings[0].gateway_reading_id if parsed.readings else None)
    return out


_REFUSAL_TEXT = {
    SignatureProblem.missing_headers: f"missing {GATEWAY_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header",
    # One message for both: a caller must not learn which gateway ids exist.
    SignatureProblem.unknown_gateway: "webhook signature does not verify",
    SignatureProblem.bad_signature: "webhook signature does not verify",
    SignatureProblem.bad_timestamp: f"{TIMESTAMP_HEADER} must be Unix time in seconds",
}


def _refusal_text(problem: SignatureProblem, max_skew_s: int) -> str:
    return _REFUSAL_TEXT.get(
        problem,
        f"{TIMESTAMP_HEADER} is more than {max_skew_s} s away from the hub's clock (replay protection); "
        "check the gateway's clock",
    )


def _answer(result: StoreResult) -> WebhookAnswer:
    item = result.items[0]
    if item.duplicate:
        return WebhookAnswer(
            200, {"status": "duplicate", "reading_id": item.reading_id, "gateway_reading_id": item.gateway_reading_id}
        )
    return WebhookAnswer(
        202,
        {
            "status": "accepted",
            "reading_id": item.reading_id,
            "gateway_reading_id": item.gateway_reading_id,
            "measurement_ids": list(item.measurement_ids),
            "delivery": "blocked" if item.blocked else "pending",
        },
    )


def receive_webhook(
    hub: Hub,
    *,
    kind: GatewayKind,
    headers: Mapping[str, str],
    body: bytes,
    content_type: str | None = None,
    correlation_id: str | None = None,
    started: float | None = None,
    now: datetime | None = None,
) -> WebhookAnswer:
    started = time.perf_counter() if started is None else started
    now = now or utcnow()
    settings = hub.settings
    gateway_ref: tuple[str, str] | None = None  # (id, organization id), readable after a rollback
    # Second attempt only after a unique-key race with a concurrent delivery of the same reading:
    # it then finds the reading and answers 200.
    for attempt in (1, 2):
        try:
            with hub.sessions() as session, session.begin():
                verified = verify_webhook(
                    session,
                    hub.sealer,
                    kind=kind,
                    gateway_id=headers.get(GATEWAY_HEADER),
                    timestamp=headers.get(TIMESTAMP_HEADER),
                    signature=headers.get(SIGNATURE_HEADER),
                    body=body,
                    now=now.timestamp(),
                    max_skew_s=settings.webhook_max_skew_s,
                )
                gateway = verified.gateway
                gateway_ref = (gateway.id, gateway.organization_id)
                if verified.used_previous_secret:
                    gateway.previous_secret_last_used_at = now
                readings = parse_and_normalise(kind, body, now)
                result = store_readings(
                    session,
                    gateway,
                    readings,
                    settings=settings,
                    source=ReadingSource.webhook,
                    now=now,
                    audit_action="webhook.received",
                    correlation_id=correlation_id,
                    latency_ms=(time.perf_counter() - started) * 1000,
                )
                answer = _answer(result)
                outcome = "accepted" if answer.status_code == 202 else "duplicate"
            READINGS_RECEIVED.labels(kind.value, "webhook", outcome).inc()
            return answer
        except WebhookRefusal as refusal:
            READINGS_RECEIVED.labels(kind.value, "webhook", "refused").inc()
            _audit_refusal(hub, refusal, correlation_id)
            raise Unauthorized(_refusal_text(refusal.problem, settings.webhook_max_skew_s)) from None
        except (Rejected, InvalidObservation) as exc:
            assert gateway_ref is not None
            errors = exc.errors if isinstance(exc, Rejected) else exc.field_errors
            gid = exc.gateway_reading_id if isinstance(exc, Rejected) else None
            item_id = _quarantine(hub, gateway_ref, body, errors, content_type, gid, correlation_id, now)
            READINGS_RECEIVED.labels(kind.value, "webhook", "quarantined").inc()
            raise ValidationFailed(f"payload refused and kept in quarantine {item_id} for review", errors) from None
        except ReadingConflict as exc:
            assert gateway_ref is not None
            item_id = _quarantine(
                hub, gateway_ref, body, exc.field_errors, content_type, exc.gateway_reading_id, correlation_id, now, 409
            )
            READINGS_RECEIVED.labels(kind.value, "webhook", "conflict").inc()
            raise ReadingIdConflict(
                "this reading id was already received with different content; the first reading is kept and "
                f"this payload is in quarantine {item_id} for review; do not retry it",
                exc.field_errors,
            ) from None
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _audit_refusal(hub: Hub, refusal: WebhookRefusal, correlation_id: str | None) -> None:
    gw_id = refusal.gateway_id
    with hub.sessions() as session, session.begin():
        record(
            session,
            action="webhook.refused",
            outcome=Outcome.denied,
            actor=Actor("gateway", gw_id or "unknown"),
            organization_id=refusal.organization_id,
            resource_type="Gateway",
            resource_ids=[gw_id] if gw_id else [],
            status_code=401,
            correlation_id=correlation_id,
            detail={"reason": refusal.problem.value},
        )


def _quarantine(
    hub: Hub,
    gateway: tuple[str, str],
    body: bytes,
    errors: list[FieldError],
    content_type: str | None,
    gateway_reading_id: str | None,
    correlation_id: str | None,
    now: datetime,
    status_code: int = 422,
) -> str:
    with hub.sessions() as session, session.begin():
        gateway_id, organization_id = gateway
        item = quarantine.put(
            session,
            organization_id=organization_id,
            gateway_id=gateway_id,
            source=ReadingSource.webhook,
            raw_body=body,
            errors=errors,
            now=now,
            actor=Actor("gateway", gateway_id),
            content_type=content_type,
            gateway_reading_id=gateway_reading_id,
            correlation_id=correlation_id,
            status_code=status_code,
        )
        return item.id


def reprocess(hub: Hub, organization_id: str, item_id: str, *, actor: Actor | str, now: datetime | None = None) -> str:
    """Run a quarantined payload through the current parser and checks again; returns the reading id.

    Still failing: the item stays open with the fresh errors, and ``ValidationFailed`` is raised.
    """
    now = now or utcnow()
    errors: list[FieldError] = []
    with hub.sessions() as session, session.begin():
        item = quarantine.get(session, organization_id, item_id, for_update=True)
        if item.status is not QuarantineStatus.open:
            raise Conflict(f"quarantined payload is already {item.status.value}")
        if item.gateway_id is None:
            raise Conflict("the gateway that sent this payload no longer exists")
        gateway = get_gateway(session, item.gateway_id, organization_id)
        try:
            with session.begin_nested():
                readings = parse_and_normalise(gateway.kind, item.raw_body, now)
                result = store_readings(
                    session,
                    gateway,
                    readings,
                    settings=hub.settings,
                    source=item.source,
                    now=now,
                    audit_action="quarantine.reprocessed",
                    status_code=200,
                    actor=actor,
                )
        except Rejected as exc:
            errors = exc.errors
        except (InvalidObservation, ReadingConflict) as exc:
            errors = exc.field_errors
        if errors:
            item.errors = [e.as_dict() for e in errors]
            item.reason = quarantine.classify(errors)
        else:
            item.status = QuarantineStatus.reprocessed
            item.reviewed_at = now
            item.reviewed_by = str(actor)
            item.reading_id = result.items[0].reading_id
            return item.reading_id
    raise ValidationFailed(f"quarantined payload {item_id} still fails its checks", errors)
