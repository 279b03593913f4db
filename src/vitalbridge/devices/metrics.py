"""Prometheus counters for readings in (SPEC §10). Labels are codes only, never ids or values."""

from __future__ import annotations

from prometheus_client import Counter

READINGS_RECEIVED = Counter(
    "vitalbridge_readings_received",
    "Gateway readings received, by gateway kind, source and outcome",
    ["gateway_kind", "source", "outcome"],  # outcome: accepted, duplicate, refused, quarantined, conflict
)
