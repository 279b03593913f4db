"""Prometheus metrics of EHR delivery (SPEC §10: deliveries by outcome, queue depth, latency, 429s).

Labels are the practice id (an opaque hub id), outcome codes and status classes only: never a
practice code, patient, value or anything from a payload. Queue depth is computed from the
database at scrape time (``QueueDepthCollector``), so every process reports the same truth.

Worker processes keep their own counters. Scrape each ``vitalbridge worker`` separately, or run
them with ``PROMETHEUS_MULTIPROC_DIR`` set (prometheus-client's multi-process mode); the hub's
``/metrics`` alone is enough for the embedded in-process worker.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterator, Mapping
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from vitalbridge.db.base import utcnow
from vitalbridge.delivery.models import OutboxEntry
from vitalbridge.runtime import Hub

DELIVERIES = Counter(
    "vitalbridge_deliveries_total",
    "Delivery attempts that changed an outbox row, by practice, outcome (delivered, retry, dead) and status class.",
    ["practice_id", "outcome", "status_class"],
)
DELIVERY_LATENCY = Histogram(
    "vitalbridge_delivery_latency_seconds",
    "From the device's measurement time to the EHR confirming the Observation.",
    ["practice_id"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600),
)
RATE_LIMITED = Counter(
    "vitalbridge_delivery_rate_limited_total",
    "Deliveries put back because the EHR or the hub's bucket was rate limiting.",
    ["practice_id"],
)


EHR_CALLS = Counter(
    "vitalbridge_delivery_ehr_calls_total",
    "EHR calls made by delivery attempts, by practice and kind (token, search, create, capabilities, read).",
    ["practice_id", "kind"],
)
CALLS_PER_OBSERVATION = Gauge(
    "vitalbridge_delivery_ehr_calls_per_observation",
    "EHR calls (token, search, create, capabilities…) per delivered Observation since this process started; "
    "failed and retried attempts count too.",
    ["practice_id"],
)
_tally_lock = threading.Lock()
_calls: Tally[str] = Tally()
_delivered: Tally[str] = Tally()


def ehr_calls(practice_id: str | None, calls: Mapping[str, int], *, delivered: bool) -> None:
    """Record what one delivery attempt cost in EHR calls, and update calls per Observation."""
    practice = practice_id or ""
    for kind, n in calls.items():
        EHR_CALLS.labels(practice, kind).inc(n)
    with _tally_lock:
        _calls[practice] += sum(calls.values())
        _delivered[practice] += 1 if delivered else 0
        if _delivered[practice]:
            CALLS_PER_OBSERVATION.labels(practice).set(_calls[practice] / _delivered[practice])


def status_class(status: int | None) -> str:
    if status is None:
        return "none"
    if status == 429:
        return "429"
    return f"{status // 100}xx"


def delivered(practice_id: str | None, how: str, measured_at: datetime | None) -> None:
    DELIVERIES.labels(practice_id or "", "delivered", "2xx").inc()
    if measured_at is not None:
        DELIVERY_LATENCY.labels(practice_id or "").observe(max(0.0, (utcnow() - measured_at).total_seconds()))


class QueueDepthCollector(Collector):
    """``vitalbridge_outbox_rows{practice_id, status}``, counted when scraped."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "vitalbridge_outbox_rows", "Outbox rows by practice and status.", labels=["practice_id", "status"]
        )
        with self._hub.sessions() as session:
            rows = session.execute(
                select(OutboxEntry.practice_id, OutboxEntry.status, func.count()).group_by(
                    OutboxEntry.practice_id, OutboxEntry.status
                )
            ).all()
        for practice_id, status, count in rows:
            gauge.add_metric([practice_id or "", str(status.value if hasattr(status, "value") else status)], count)
        yield gauge
