"""Per-practice rate limiting (SPEC §7, §11; eCW: 250 calls/minute per practice code, token and
authorize requests included).

A token bucket per practice: capacity = the per-minute limit, refilled continuously at
limit/60 per second. A client that paces itself with a bucket of the same rate and no larger
burst can never be refused, whatever the network does to its requests' spacing: delays only
give the sandbox's bucket more time to refill. (eCW describes a fixed minute; a fixed window
would refuse such a client at window edges, so the ``generic`` profile does not copy that detail.)

The ``ecw`` profile (``minute_window``) does copy it: a counter per practice per wall-clock
minute, reset at the top of each minute. Once the budget is spent every call is refused until
the minute resets, as eCW "blocks the app for the rest of the minute".
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
    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._clock = clock
        self.wall_clock = wall_clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self.minute_window = False
        self._windows: dict[str, tuple[int, int]] = {}  # practice -> (minute number, calls counted)

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
            if self.minute_window:
                return self._acquire_in_window(set(practices))
            now = self._clock()
            buckets = [self._refilled(p, now) for p in set(practices)]
            short = [b for b in buckets if b.tokens < 1.0]
            if short:
                wait = max((1.0 - b.tokens) / self._rate for b in short)
                return max(1, math.ceil(wait))
            for bucket in buckets:
                bucket.tokens -= 1.0
            return None

    def _acquire_in_window(self, practices: set[str]) -> int | None:
        now = self.wall_clock()
        minute = math.floor(now / 60)
        counts: dict[str, int] = {}
        for practice in practices:
            counted_minute, count = self._windows.get(practice, (minute, 0))
            counts[practice] = count if counted_minute == minute else 0  # a new minute starts from zero
        if any(c >= self.per_minute for c in counts.values()):
            return max(1, math.ceil((minute + 1) * 60 - now))
        for practice, count in counts.items():
            self._windows[practice] = (minute, count + 1)
        return None

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._windows.clear()
