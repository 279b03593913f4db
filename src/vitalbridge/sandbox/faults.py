"""Switchable faults (SPEC §11: "5xx, timeouts, resets, latency"; SPEC §7 is what they exercise).

A fault plan applies to one practice's FHIR paths, or (no practice) to every practice's, and
optionally to the token endpoint. For each request the plan draws one number from its own
seeded generator and picks at most one fault by cumulative rate, in this order:
``rate_429``, ``error``, ``timeout``, ``reset``, ``after_commit``. The same plan, seed and
request order give the same faults, so a failing test can be replayed.

``after_commit`` is the ambiguous failure: the sandbox processes the request (an Observation is
stored) and then answers 5xx or drops the connection, so a naive client retries and duplicates.
The ASGI side of faults (holding, dropping a connection) is in ``middleware.py``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FaultKind(StrEnum):
    rate_429 = "rate_429"  # 429 + Retry-After, as a busy gateway would answer
    error = "error"  # error_status (5xx) with an OperationOutcome, nothing processed
    timeout = "timeout"  # hold the request past the client's timeout, then 504 (or drop)
    reset = "reset"  # close the TCP connection without a response, nothing processed
    after_commit = "after_commit"  # process the request, then fail the response


class FaultPlanIn(BaseModel):
    """Body of ``PUT /_sandbox/faults``."""

    model_config = ConfigDict(extra="forbid")

    practice: str | None = None
    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_status: int = Field(default=503, ge=500, le=599)
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    timeout_s: float | None = Field(default=None, gt=0, le=3600)
    timeout_action: Literal["error", "drop"] = "error"
    reset_rate: float = Field(default=0.0, ge=0, le=1)
    after_commit_rate: float = Field(default=0.0, ge=0, le=1)
    after_commit_action: Literal["error", "drop"] = "error"
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    rate_429: float = Field(default=0.0, ge=0, le=1)
    retry_after_s: int = Field(default=1, ge=0, le=3600)
    seed: int = 0
    apply_to_token: bool = False

    @model_validator(mode="after")
    def _rates_fit(self) -> FaultPlanIn:
        total = self.rate_429 + self.error_rate + self.timeout_rate + self.reset_rate + self.after_commit_rate
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total:.3f}; at most one fault per request, so at most 1.0")
        return self


@dataclass
class Decision:
    kind: FaultKind | None
    plan: FaultPlanIn


class _ActivePlan:
    def __init__(self, plan: FaultPlanIn) -> None:
        self.plan = plan
        # Not for security: a reproducible sequence of fault draws.
        self.rng = random.Random(plan.seed)  # noqa: S311
        self.lock = threading.Lock()

    def draw(self) -> Decision:
        plan = self.plan
        with self.lock:
            u = self.rng.random()
        edge = 0.0
        for kind, rate in (
            (FaultKind.rate_429, plan.rate_429),
            (FaultKind.error, plan.error_rate),
            (FaultKind.timeout, plan.timeout_rate),
            (FaultKind.reset, plan.reset_rate),
            (FaultKind.after_commit, plan.after_commit_rate),
        ):
            edge += rate
            if u < edge:
                return Decision(kind, plan)
        return Decision(None, plan)


class FaultBoard:
    """The plans in force: one per practice, plus an optional one for all practices."""

    def __init__(self) -> None:
        self._plans: dict[str | None, _ActivePlan] = {}

    def put(self, plan: FaultPlanIn) -> None:
        self._plans[plan.practice] = _ActivePlan(plan)

    def clear(self, practice: str | None = None, *, everything: bool = True) -> None:
        if everything:
            self._plans.clear()
        else:
            self._plans.pop(practice, None)

    def plans(self) -> list[FaultPlanIn]:
        return [p.plan for p in self._plans.values()]

    def decide(self, practice: str | None) -> Decision | None:
        """The fault (or none) for one request; ``practice`` None means the token endpoint."""
        if practice is None:
            active = self._plans.get(None)
            if active is None or not active.plan.apply_to_token:
                return None
        else:
            active = self._plans.get(practice) or self._plans.get(None)
            if active is None:
                return None
        return active.draw()
