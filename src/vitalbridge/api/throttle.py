"""Inbound rate limits: per client address and path prefix, and on refused API tokens (docs/security.md).

Token buckets in the hub process's memory: they blunt floods and token guessing against one
hub process. Behind a load balancer each process limits on its own. The client address is the
TCP peer's unless that peer is listed in ``VB_TRUSTED_PROXIES``; only then does the app (the
outermost middleware, see ``app.create_app``) take it from ``X-Forwarded-For``, so a caller cannot
pick a fresh address per request. (EHR-side rate limits, which all workers must share, live in
the delivery feature.)
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

# Buckets kept at most; the least recently used are dropped first (bounded memory under a flood
# from many addresses).
_MAX_BUCKETS = 10_000


def client_ip(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class TokenBuckets:
    """``take(key)`` → 0 when allowed, else seconds until the next token."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, ...], tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _level(self, key: tuple[str, ...], now: float) -> float:
        tokens, stamp = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - stamp) * self.rate)

    def take(self, *key: str) -> float:
        with self._lock:
            now = self._clock()
            tokens = self._level(key, now)
            if tokens >= 1.0:
                self._store(key, tokens - 1.0, now)
                return 0.0
            self._store(key, tokens, now)
            return (1.0 - tokens) / self.rate

    def wait(self, *key: str) -> float:
        """Seconds until a token is free, without taking one."""
        with self._lock:
            tokens = self._level(key, self._clock())
            return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _store(self, key: tuple[str, ...], tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > _MAX_BUCKETS:
            self._buckets.popitem(last=False)


class InboundRateLimiter:
    """Per (client address, path prefix) limits from ``VB_INBOUND_RATE_LIMITS``."""

    def __init__(self, rules: Mapping[str, int], clock: Callable[[], float] = time.monotonic) -> None:
        # Longest prefix first, so a specific rule wins over a general one.
        self._rules = [(p, TokenBuckets(n, clock)) for p, n in sorted(rules.items(), key=lambda r: -len(r[0]))]

    def check(self, ip: str, path: str) -> float:
        for prefix, buckets in self._rules:
            if path.startswith(prefix):
                return buckets.take(ip, prefix)
        return 0.0


class AuthFailureThrottle:
    """After ``per_minute`` refused tokens from one address, refuse it until the bucket refills."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets = TokenBuckets(per_minute, clock)

    def blocked_for(self, ip: str) -> float:
        return self._buckets.wait(ip)

    def note_failure(self, ip: str) -> None:
        self._buckets.take(ip)
