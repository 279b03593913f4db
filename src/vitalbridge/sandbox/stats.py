"""Counters behind ``GET /_sandbox/stats`` (SPEC §11), so tests can see what a client really did
(e.g. that concurrent workers fetched one token, not fifty)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.token_requests = 0
            self.token_requests_by_client: Counter[str] = Counter()
            self.token_requests_by_practice: Counter[str] = Counter()
            self.token_requests_by_grant_type: Counter[str] = Counter()
            self.tokens_issued = 0
            self.token_errors: Counter[str] = Counter()
            self.authorize_requests = 0
            self.fhir_requests_by_practice: Counter[str] = Counter()
            self.fhir_requests_by_kind: Counter[str] = Counter()
            self.rate_limited_by_practice: Counter[str] = Counter()
            self.faults_injected: Counter[str] = Counter()
            self.observations_created: Counter[str] = Counter()
            self.conditional_matches = 0
            # 401 invalid_token on the FHIR API: a client used an expired, unknown or revoked token.
            self.invalid_token_refusals = 0
            self.exports_started = 0
            # Bulk status polls, and those sent before the previous Retry-After had passed (429).
            self.export_polls = 0
            self.export_polls_early = 0

    def token_request(self, client_id: str | None, grant_type: str) -> None:
        with self._lock:
            self.token_requests += 1
            self.token_requests_by_client[client_id or ""] += 1
            self.token_requests_by_grant_type[grant_type or ""] += 1

    def charged(self, practices: list[str]) -> None:
        with self._lock:
            for p in practices:
                self.token_requests_by_practice[p] += 1

    def count(self, name: str, key: str | None = None) -> None:
        """Bump a plain counter (``tokens_issued``) or a keyed one (``faults_injected``, key)."""
        with self._lock:
            if key is None:
                setattr(self, name, getattr(self, name) + 1)
            else:
                getattr(self, name)[key] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "token_requests": self.token_requests,
                "token_requests_by_client": dict(self.token_requests_by_client),
                "token_requests_by_practice": dict(self.token_requests_by_practice),
                "token_requests_by_grant_type": dict(self.token_requests_by_grant_type),
                "tokens_issued": self.tokens_issued,
                "token_errors": dict(self.token_errors),
                "authorize_requests": self.authorize_requests,
                "fhir_requests_by_practice": dict(self.fhir_requests_by_practice),
                "fhir_requests_by_kind": dict(self.fhir_requests_by_kind),
                "rate_limited": sum(self.rate_limited_by_practice.values()),
                "rate_limited_by_practice": dict(self.rate_limited_by_practice),
                "faults_injected": dict(self.faults_injected),
                "observations_created": sum(self.observations_created.values()),
                "observations_created_by_practice": dict(self.observations_created),
                "conditional_matches": self.conditional_matches,
                "invalid_token_refusals": self.invalid_token_refusals,
                "exports_started": self.exports_started,
                "export_polls": self.export_polls,
                "export_polls_early": self.export_polls_early,
            }


def calls_per_observation(stats: dict[str, Any]) -> dict[str, Any]:
    """The EHR's view of what each stored Observation cost: token and FHIR calls by kind."""
    calls = {"token": int(stats["token_requests"]), **stats["fhir_requests_by_kind"]}
    stored = int(stats["observations_created"])
    total = sum(calls.values())
    return {
        "ehr_calls": calls,
        "ehr_calls_total": total,
        "observations": stored,
        "calls_per_observation": round(total / stored, 3) if stored else None,
    }
