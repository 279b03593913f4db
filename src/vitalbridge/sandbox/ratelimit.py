"""Per-practice rate limiting (SPEC §7, §11; eCW: 250 calls/minute per practice code, token and
authorize requests included).

A token bucket per practice: capacity = the per-minute limit, refilled continuously at
limit/60 per second. A client that paces itself with a bucket of the same rate and no larger
burst can never be refused, whatever the network does to its requests' spacing: delays only
give the sandbox's bucket more time to refill. (eCW describes a fixed minute; a fixed window
would refuse such a client at window edges, so the sandbox does not copy that detail.)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def _refilled(self, practice: str, now: float) -> _Bucket:
        bucket = self._buckets.get(practice)
        if bucket is None:
            bucket = self._buckets[practice] = _Bucket(float(self.per_minute), now)
        else:
            bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
        return bucket

    def acquire(self, practices: Iterable[str]) -> int | None:
        """Take one call from each practice's budget, or none if any is empty.

        Returns ``None`` when admitted, else the whole seconds to wait (for ``Retry-After``).
        """
        if not self.enabled:
            return None
        with self._lock:
            now = self._clock()
            buckets = [self._refilled(p, now) for p in set(practices)]
            short = [b for b in buckets if b.tokens < 1.0]
            if short:
                wait = max((1.0 - b.tokens) / self._rate for b in short)
                return max(1, math.ceil(wait))
            for bucket in buckets:
                bucket.tokens -= 1.0
            return None

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
