"""Batch sync (SPEC §5): pull a time window of readings from the gateway's REST API to fill gaps.

Idempotent by construction: every record goes through the same ``store_readings`` as a webhook,
keyed by gateway reading id, so re-running a window (or overlapping a webhook) stores nothing
twice. Each page commits on its own with one audit entry (the outbound call and what it
yielded); a record that fails its checks is quarantined alone and the rest of the page is kept.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.db.base import utcnow
from vitalbridge.devices import quarantine
from vitalbridge.devices.gateway_service import api_key, get_gateway
from vitalbridge.devices.gateways import adapter_for
from vitalbridge.devices.ingest import InvalidObservation, ReadingConflict, store_readings
from vitalbridge.devices.metrics import READINGS_RECEIVED
from vitalbridge.devices.models import Gateway
from vitalbridge.devices.normalize import normalise_reading
from vitalbridge.devices.readings import NormalizedReading, ReadingSource
from vitalbridge.errors import ConfigurationError, FieldError, UpstreamError, ValidationFailed
from vitalbridge.runtime import Hub
from vitalbridge.security.outbound import guarded_transport

SYNC_ACTOR = Actor.service("sync")
# Protects against a gateway whose cursor never ends.
MAX_PAGES = 10_000


@dataclass
class SyncSummary:
    pages: int = 0
    records: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantine_ids: list[str] = field(default_factory=list)


def sync_gateway(
    hub: Hub,
    gateway_id: str,
    since: datetime,
    until: datetime,
    *,
    client: httpx.Client | None = None,
    page_size: int | None = None,
) -> SyncSummary:
    if since.tzinfo is None or until.tzinfo is None:
        raise ValidationFailed("--since and --until need a UTC offset (e.g. 2025-03-01T00:00:00+00:00)")
    if until <= since:
        raise ValidationFailed("--until must be after --since")
    with hub.sessions() as session:
        gateway = get_gateway(session, gateway_id)
        key = api_key(gateway, hub.sealer)
    if not gateway.api_base_url:
        raise ConfigurationError("this gateway has no REST API configured (`vitalbridge gateways set-api`)")
    adapter = adapter_for(gateway.kind)
    size = page_size or hub.settings.gateway_sync_page_size
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    owns_client = client is None
    # The gateway's API URL is configuration: its addresses are checked at connect time.
    http = client or httpx.Client(timeout=30, transport=guarded_transport(hub.outbound_policy))
    summary = SyncSummary()
    cursor: str | None = None
    try:
        for _ in range(MAX_PAGES):
            req = adapter.page_request(since, until, cursor, size)
            started = time.perf_counter()
            try:
                resp = http.get(gateway.api_base_url + req.path, params=req.params, headers=headers)
            except httpx.HTTPError as exc:
                _audit_failure(hub, gateway, None, type(exc).__name__)
                raise UpstreamError(f"gateway API unreachable ({type(exc).__name__}); re-run the sync") from None
            latency = (time.perf_counter() - started) * 1000
            if resp.status_code != 200:
                _audit_failure(hub, gateway, resp.status_code, "http_status")
                raise UpstreamError(f"gateway API answered HTTP {resp.status_code}; re-run the sync")
            try:
                page = adapter.parse_page(resp.content)
            except ValueError:
                _audit_failure(hub, gateway, resp.status_code, "malformed_page")
                raise UpstreamError("gateway API sent a malformed page; re-run the sync") from None
            summary.pages += 1
            summary.records += len(page.records)
            _store_page(hub, gateway, page.records, summary, resp.status_code, latency)
            cursor = page.next_cursor
            if not cursor:
                break
    finally:
        if owns_client:
            http.close()
    with hub.sessions() as session, session.begin():
        gw = get_gateway(session, gateway.id)
        if gw.synced_until is None or until > gw.synced_until:
            gw.synced_until = until
    return summary


def _store_page(
    hub: Hub, gateway: Gateway, records: list[object], summary: SyncSummary, status: int, latency_ms: float
) -> None:
    now = utcnow()
    adapter = adapter_for(gateway.kind)
    good: list[NormalizedReading] = []
    bad: list[tuple[bytes, list[FieldError], str | None]] = []
    raws: dict[str, bytes] = {}
    for rec in records:
        raw = json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode()
        parsed = adapter.parse_record(rec, ("body",))
        if parsed.errors:
            bad.append((raw, parsed.errors, None))
            continue
        for reading in parsed.readings:
            result = normalise_reading(reading, now)
            if isinstance(result, list):
                bad.append((raw, result, reading.gateway_reading_id))
            else:
                good.append(result)
                raws[reading.gateway_reading_id] = raw
    try:
        stored = _commit(hub, gateway, good, now, status, latency_ms)
    except (InvalidObservation, ReadingConflict):
        # One record's Observation is invalid (a hub defect), or reuses a reading id for other
        # content: keep the others, one by one, and quarantine that one.
        stored = []
        for item in good:
            try:
                stored += _commit(hub, gateway, [item], now, status, latency_ms)
            except (InvalidObservation, ReadingConflict) as exc:
                key = item.source.gateway_reading_id
                bad.append((raws[key], exc.field_errors, key))
    summary.stored += sum(1 for d in stored if not d)
    summary.duplicates += sum(1 for d in stored if d)
    kind = gateway.kind.value
    READINGS_RECEIVED.labels(kind, "sync", "accepted").inc(sum(1 for d in stored if not d))
    READINGS_RECEIVED.labels(kind, "sync", "duplicate").inc(sum(1 for d in stored if d))
    READINGS_RECEIVED.labels(kind, "sync", "quarantined").inc(len(bad))
    for raw, errors, gid in bad:
        with hub.sessions() as session, session.begin():
            kept = quarantine.put(
                session,
                organization_id=gateway.organization_id,
                gateway_id=gateway.id,
                source=ReadingSource.sync,
                raw_body=raw,
                errors=errors,
                now=now,
                actor=SYNC_ACTOR,
                content_type="application/json",
                gateway_reading_id=gid,
            )
            summary.quarantined += 1
            summary.quarantine_ids.append(kept.id)


def _commit(
    hub: Hub,
    gateway: Gateway,
    readings: list[NormalizedReading],
    now: datetime,
    status: int,
    latency_ms: float,
) -> list[bool]:
    """Store one batch in one transaction; returns a duplicate flag per reading."""
    with hub.sessions() as session, session.begin():
        gw = get_gateway(session, gateway.id)
        result = store_readings(
            session,
            gw,
            readings,
            settings=hub.settings,
            source=ReadingSource.sync,
            now=now,
            audit_action="gateway.sync",
            status_code=status,
            latency_ms=latency_ms,
            actor=SYNC_ACTOR,
        )
        return [s.duplicate for s in result.items]


def _audit_failure(hub: Hub, gateway: Gateway, status: int | None, reason: str) -> None:
    with hub.sessions() as session, session.begin():
        record(
            session,
            action="gateway.sync",
            outcome=Outcome.failure,
            actor=SYNC_ACTOR,
            organization_id=gateway.organization_id,
            resource_type="Gateway",
            resource_ids=[gateway.id],
            status_code=status,
            detail={"reason": reason},
        )
