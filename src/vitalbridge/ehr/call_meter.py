"""Counting the EHR calls one unit of work makes (SPEC §10: calls per delivered Observation).

eCW allows 250 calls a minute per practice, token requests included, so what a delivery costs in
calls decides throughput: without conditional create every Observation needs a search besides
its create. A caller wraps its work in ``metering()``; the EHR client and the token endpoint
client ``count`` each HTTP exchange into the innermost meter of the current context (thread or
task), and nothing when no meter is active.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_METER: ContextVar[Counter[str] | None] = ContextVar("ehr_call_meter", default=None)


@contextmanager
def metering() -> Iterator[Counter[str]]:
    """Count calls made inside the block, by kind (token, search, create, capabilities, read…)."""
    calls: Counter[str] = Counter()
    reset = _METER.set(calls)
    try:
        yield calls
    finally:
        _METER.reset(reset)


def count(kind: str) -> None:
    calls = _METER.get()
    if calls is not None:
        calls[kind] += 1
