"""Token buckets that pace the hub's calls to each EHR (SPEC §7), shared through the database.

Two buckets gate every call, token requests included (eCW counts ``/token`` against the same
250 calls/minute per practice code):

* ``practice:<id>`` — capacity = the practice's per-minute limit, refilled at limit/60 per second.
  A server that enforces the same rate with a bucket no smaller than ours can never refuse us,
  however the network spaces our requests (the sandbox EHR does exactly this).
* ``hub`` — the hub-wide ceiling ``ECW_RATE_LIMIT`` requests per second (default 10), capacity one
  second's worth.

The EHR counts a request when it arrives, the hub when it takes the slot. If the first request
after a full bucket is slower to arrive than a later one, the EHR's bucket started later than
ours and holds less than we think: at the exact pace the later request is refused. So the
practice bucket holds back ``transit_s`` worth of refill (``VB_RATE_LIMIT_TRANSIT_S``): a new
bucket starts earning only ``transit_s`` after it is created, and refill stops that much short
of capacity. The full burst is still available at the start; the cost is rate x transit_s calls
once per idle period (2.5 calls at 300/min), never a share of the rate.

Both are rows in ``ehr_rate_buckets``, taken and updated in one short transaction, so every
worker process on the database shares them; nobody holds a lock while waiting. After a 429 the
practice is blocked until ``Retry-After`` and its rate halved, recovering over a few minutes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from vitalbridge.db.locking import get_or_create_locked
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.ehr.headers import WINDOW_GUARD_S, WINDOW_S, next_window_start
from vitalbridge.ehr.metrics import RATE_LIMITED
from vitalbridge.ehr.models import RateBucket
from vitalbridge.errors import RateLimited

HUB_KEY = "hub"
MIN_SLOW_FACTOR = 0.1
# A slowed practice regains its full rate in about five minutes without further 429s.
RECOVERY_PER_S = 1.0 / 300.0


def practice_key(practice_id: str) -> str:
    return f"practice:{practice_id}"


@dataclass(frozen=True)
class BucketSpec:
    key: str
    capacity: float
    rate_per_s: float  # before the slow factor
    # Refill stops this many tokens short of capacity (the transit allowance, see above).
    reserve: float = 0.0
    # A new bucket starts earning this many seconds after it is created.
    start_delay_s: float = 0.0


def refill(bucket: RateBucket, spec: BucketSpec, now: float) -> None:
    """Advance a bucket to ``now``: recover the slow factor, add tokens, never past capacity."""
    if bucket.minute_window:
        if now >= bucket.updated_at and math.floor(now / WINDOW_S) != math.floor(bucket.updated_at / WINDOW_S):
            bucket.tokens = spec.capacity
        bucket.updated_at = max(bucket.updated_at, now)
        return
    elapsed = max(0.0, now - bucket.updated_at)
    bucket.slow_factor = min(1.0, bucket.slow_factor + elapsed * RECOVERY_PER_S)
    # No tokens accrue while the EHR has told us to hold off.
    start = max(bucket.updated_at, min(bucket.blocked_until, now))
    earning = max(0.0, now - start)
    ceiling = max(1.0, spec.capacity - spec.reserve)
    if bucket.tokens < ceiling:
        bucket.tokens = min(ceiling, bucket.tokens + earning * spec.rate_per_s * bucket.slow_factor)
    bucket.updated_at = max(bucket.updated_at, now)


def wait_for(bucket: RateBucket, spec: BucketSpec, now: float) -> float:
    """Seconds until ``bucket`` (already refilled) can give one token; 0 if it can now."""
    if bucket.blocked_until > now:
        return bucket.blocked_until - now
    if bucket.minute_window:
        offset = now % WINDOW_S
        if offset < WINDOW_GUARD_S:
            return WINDOW_GUARD_S - offset
        if bucket.tokens < 1.0 or offset >= WINDOW_S - WINDOW_GUARD_S:
            return next_window_start(now) - now
        return 0.0
    if bucket.tokens >= 1.0:
        return 0.0
    # A new bucket earns nothing before its start delay has passed.
    not_earning = max(0.0, bucket.updated_at - now)
    return not_earning + (1.0 - bucket.tokens) / (spec.rate_per_s * bucket.slow_factor)


class RateLimiter:
    """``acquire`` before every EHR request; ``slow_down`` when the EHR answers 429."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        hub_rate_per_s: float,
        max_wait_s: float = 30.0,
        transit_s: float = 0.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sessions = sessions
        self._hub_rate = hub_rate_per_s
        self.max_wait_s = max_wait_s
        self.transit_s = transit_s
        self._clock = clock
        self._sleep = sleep

    def _specs(self, conn: PracticeConnection) -> list[BucketSpec]:
        per_minute = max(1, conn.rate_limit_per_minute)
        rate = per_minute / 60.0
        specs = [BucketSpec(practice_key(conn.id), float(per_minute), rate, rate * self.transit_s, self.transit_s)]
        if self._hub_rate > 0:
            specs.append(BucketSpec(HUB_KEY, max(1.0, self._hub_rate), self._hub_rate))
        # Lock rows in one global order so two transactions never wait on each other crosswise.
        return sorted(specs, key=lambda s: s.key)

    def _bucket(self, session: Session, spec: BucketSpec, now: float) -> RateBucket:
        return get_or_create_locked(
            session,
            select(RateBucket).where(RateBucket.key == spec.key),
            lambda: RateBucket(
                key=spec.key,
                tokens=spec.capacity,
                updated_at=now + spec.start_delay_s,
                blocked_until=0.0,
                slow_factor=1.0,
                minute_window=False,
            ),
        )

    def try_acquire(self, conn: PracticeConnection) -> float:
        """Take one call from both buckets and return 0, or take nothing and return the wait."""
        with self._sessions() as session, session.begin():
            now = self._clock()
            pairs = [(spec, self._bucket(session, spec, now)) for spec in self._specs(conn)]
            for spec, bucket in pairs:
                refill(bucket, spec, now)
            wait = max(wait_for(bucket, spec, now) for spec, bucket in pairs)
            if wait == 0.0:
                for _spec, bucket in pairs:
                    bucket.tokens -= 1.0
            return wait

    def acquire(self, conn: PracticeConnection, *, max_wait_s: float | None = None) -> float:
        """Block until the call may go; return the seconds waited. Raises ``RateLimited`` rather
        than wait longer than ``max_wait_s`` (default ``VB_RATE_LIMIT_MAX_WAIT_S``)."""
        limit = self.max_wait_s if max_wait_s is None else max_wait_s
        waited = 0.0
        while True:
            wait = self.try_acquire(conn)
            if wait == 0.0:
                return waited
            if waited + wait > limit:
                RATE_LIMITED.labels("hub").inc()
                raise RateLimited(
                    f"the EHR rate limit for practice {conn.practice_code} is used up; retry in {wait:.1f} s",
                    retry_after=wait,
                )
            self._sleep(wait)
            waited += wait

    def slow_down(self, practice_id: str, retry_after: float, *, minute_window: bool = False) -> None:
        """The EHR said 429: nobody calls it before ``retry_after`` and the pace halves.

        ``minute_window`` (a 429 without Retry-After): nobody calls it before the next minute, and
        from then on the practice is paced per wall-clock minute (no halving: the model is exact).
        """
        with self._sessions() as session, session.begin():
            now = self._clock()
            bucket = get_or_create_locked(
                session,
                select(RateBucket).where(RateBucket.key == practice_key(practice_id)),
                lambda: RateBucket(
                    key=practice_key(practice_id),
                    tokens=0.0,
                    updated_at=now,
                    blocked_until=0.0,
                    slow_factor=1.0,
                    minute_window=False,
                ),
            )
            bucket.tokens = 0.0
            bucket.updated_at = max(bucket.updated_at, now)
            if minute_window:
                bucket.minute_window = True
                bucket.blocked_until = max(bucket.blocked_until, next_window_start(now))
                return
            bucket.blocked_until = max(bucket.blocked_until, now + max(0.0, retry_after))
            bucket.slow_factor = max(MIN_SLOW_FACTOR, bucket.slow_factor * 0.5)
