"""Prometheus metrics for EHR traffic (SPEC §10: token refreshes, 429s, delivery latency).

Labels are low-cardinality codes only — never practice codes, ids or anything from a payload.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TOKEN_REQUESTS = Counter(
    "vitalbridge_ehr_token_requests_total",
    "Token requests sent to EHR token endpoints.",
    ["grant_type", "outcome"],
)
EHR_REQUESTS = Counter(
    "vitalbridge_ehr_requests_total",
    "FHIR calls to EHRs, by interaction and result (2xx, 4xx, 5xx, 429, error).",
    ["interaction", "result"],
)
EHR_LATENCY = Histogram(
    "vitalbridge_ehr_request_seconds",
    "Latency of FHIR calls to EHRs.",
    ["interaction"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RATE_LIMITED = Counter(
    "vitalbridge_ehr_rate_limited_total",
    "Calls held back by rate limits: the EHR answered 429 (ehr) or the hub's bucket was empty (hub).",
    ["source"],
)


def result_of(status: int | None) -> str:
    if status is None:
        return "error"
    if status == 429:
        return "429"
    return f"{status // 100}xx"
