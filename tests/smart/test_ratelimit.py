"""The EHR rate limiter: per-practice bucket at the practice's per-minute rate, the hub-wide
ceiling, 429 back-off, shared through the database by every hub process (SPEC §7)."""

from __future__ import annotations

import pytest

from tests.smart.conftest import SmartEnv
from vitalbridge.ehr.client import EhrClient
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.ehr.ratelimit import RateLimiter
from vitalbridge.errors import RateLimited
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.settings import Settings
from vitalbridge.smart.services import build_smart
from vitalbridge.tenancy.models import AuthMethod


class FakeTime:
    """A clock the test moves; ``sleep`` advances it instead of waiting."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def conn(per_minute: int, practice_id: str = "practice-1") -> PracticeConnection:
    return PracticeConnection(
        id=practice_id,
        organization_id="org",
        practice_code="JAFJCD",
        fhir_base_url="http://fhir.invalid/fhir/r4/JAFJCD",
        token_url="http://fhir.invalid/token",
        authorize_url=None,
        client_id="c",
        auth_method=AuthMethod.private_key_jwt,
        scopes=(),
        rate_limit_per_minute=per_minute,
        request_timeout_s=5,
    )


def limiter(hub: Hub, t: FakeTime, hub_rate: float = 0.0, max_wait: float = 0.0) -> RateLimiter:
    return RateLimiter(hub.sessions, hub_rate_per_s=hub_rate, max_wait_s=max_wait, clock=t.clock, sleep=t.sleep)


def test_practice_bucket_allows_its_per_minute_rate_then_refuses(hub: Hub) -> None:
    t = FakeTime()
    rl = limiter(hub, t)
    c = conn(per_minute=6)
    for _ in range(6):
        assert rl.try_acquire(c) == 0.0
    wait = rl.try_acquire(c)
    assert wait == pytest.approx(10.0)  # one call per 60/6 seconds
    with pytest.raises(RateLimited) as refused:
        rl.acquire(c)
    assert refused.value.retry_after == pytest.approx(10.0)
    t.now += 10.0
    assert rl.try_acquire(c) == 0.0
    assert rl.try_acquire(c) > 0


def test_acquire_waits_when_allowed_to(hub: Hub) -> None:
    t = FakeTime()
    rl = limiter(hub, t, max_wait=60)
    c = conn(per_minute=2)
    assert rl.acquire(c) == 0.0
    assert rl.acquire(c) == 0.0
    assert rl.acquire(c) == pytest.approx(30.0)
    assert t.slept == [pytest.approx(30.0)]
    # Never more than the per-minute rate over any minute: two more calls took another minute.
    assert rl.acquire(c) == pytest.approx(30.0)


def test_hub_wide_ceiling_applies_across_practices(hub: Hub) -> None:
    t = FakeTime()
    rl = limiter(hub, t, hub_rate=2.0)
    a, b = conn(1000, "practice-a"), conn(1000, "practice-b")
    assert rl.try_acquire(a) == 0.0
    assert rl.try_acquire(b) == 0.0
    assert rl.try_acquire(a) == pytest.approx(0.5)
    assert rl.try_acquire(b) == pytest.approx(0.5)
    t.now += 0.5
    assert rl.try_acquire(b) == 0.0


def test_slow_down_blocks_until_retry_after_and_halves_the_pace(hub: Hub) -> None:
    t = FakeTime()
    rl = limiter(hub, t)
    c = conn(per_minute=60)
    assert rl.try_acquire(c) == 0.0
    rl.slow_down(c.id, 5.0)
    assert rl.try_acquire(c) == pytest.approx(5.0)
    t.now += 5.0
    # No tokens accrued during the hold; at half pace one call takes ~2 s to earn.
    wait = rl.try_acquire(c)
    assert 1.9 < wait <= 2.0
    t.now += 2.0
    assert rl.try_acquire(c) == 0.0


def test_a_429_without_retry_after_switches_the_practice_to_per_minute_pacing(hub: Hub) -> None:
    """eCW's minute window: held to the next minute, then at most the limit per wall-clock minute,
    nothing in the first or last second of a minute, and no halving (the model is exact)."""
    t = FakeTime(start=1_800_000_000.0 + 20.0)  # 20 s into a minute (1_800_000_000 is a whole minute)
    rl = limiter(hub, t)
    c = conn(per_minute=5)
    assert rl.try_acquire(c) == 0.0
    rl.slow_down(c.id, 1.0, minute_window=True)
    assert rl.try_acquire(c) == pytest.approx(41.0)  # to the next minute, plus the 1 s guard
    t.now += 41.0
    assert [rl.try_acquire(c) for _ in range(5)] == [0.0] * 5  # the whole minute's budget
    assert rl.try_acquire(c) == pytest.approx(60.0)  # spent: wait for the next minute (+1 s)
    t.now += 58.5  # the last second of the minute: tokens are back only after the boundary
    assert rl.try_acquire(c) == pytest.approx(1.5)
    t.now += 1.5
    assert [rl.try_acquire(c) for _ in range(4)] == [0.0] * 4
    t.now += 58.2  # 59.2 s into the minute: one call left, but the last second is off limits
    assert rl.try_acquire(c) == pytest.approx(1.8)


def test_buckets_are_shared_by_two_hubs_on_one_database(settings: Settings) -> None:
    t = FakeTime()
    first, second = build_hub(settings), build_hub(settings)
    try:
        assert first.engine is not second.engine
        c = conn(per_minute=4)
        rl1, rl2 = limiter(first, t), limiter(second, t)
        assert rl1.try_acquire(c) == 0.0
        assert rl2.try_acquire(c) == 0.0
        assert rl1.try_acquire(c) == 0.0
        assert rl2.try_acquire(c) == 0.0
        assert rl1.try_acquire(c) > 0
        assert rl2.try_acquire(c) > 0
        rl2.slow_down(c.id, 30)
        assert rl1.try_acquire(c) == pytest.approx(30.0)
    finally:
        first.close()
        second.close()


def test_token_requests_count_against_the_practice_budget(smart_env: SmartEnv) -> None:
    """eCW counts /token calls in the 250/min budget: with 3/min, a cold call costs 2 slots."""
    t = FakeTime()
    practice = smart_env.add_practice("PRAC2", rate_limit_per_minute=3, client_id="prac2-client")
    smart_env.register_client("prac2-client", practices=["PRAC2"])
    smart = build_smart(smart_env.hub, limiter_clock=t.clock, sleep=t.sleep)
    smart.limiter.max_wait_s = 0.0
    client = EhrClient(smart_env.hub, smart)
    try:
        client.get(practice, "metadata")  # token request + GET: 2 of 3 slots
        client.get(practice, "metadata")  # 3 of 3
        with pytest.raises(RateLimited):
            client.get(practice, "metadata")
        stats = smart_env.sandbox.stats()
        assert stats["token_requests_by_practice"] == {"PRAC2": 1}
        assert stats["fhir_requests_by_practice"]["PRAC2"] == 2
        # One slot back at 3/min; a new bucket starts earning after the transit allowance.
        t.now += 20.0 + smart.limiter.transit_s
        client.get(practice, "metadata")
        # A practice's own bucket: the other practice is unaffected.
        client.get(smart_env.practice, "metadata")
    finally:
        smart.close()


def test_waiting_for_a_slot_then_calling(smart_env: SmartEnv) -> None:
    t = FakeTime()
    practice = smart_env.add_practice("PRAC2", rate_limit_per_minute=2, client_id="prac2-client")
    smart_env.register_client("prac2-client", practices=["PRAC2"])
    smart = build_smart(smart_env.hub, limiter_clock=t.clock, sleep=t.sleep)
    smart.limiter.max_wait_s = 120.0
    try:
        client = EhrClient(smart_env.hub, smart)
        client.get(practice, "metadata")
        client.get(practice, "metadata")
        # 2/min: the next slot 30 s on, plus the new bucket's transit allowance.
        assert t.slept == [pytest.approx(30.0 + smart.limiter.transit_s)]
    finally:
        smart.close()


def test_transit_allowance_keeps_the_hub_behind_the_ehr_bucket(hub: Hub) -> None:
    """The EHR's bucket starts when our first request arrives, later than ours: we hold back
    ``transit_s`` of refill so a request that arrives faster than the first is not refused."""
    t = FakeTime()
    rl = RateLimiter(hub.sessions, hub_rate_per_s=0.0, max_wait_s=0.0, transit_s=0.5, clock=t.clock, sleep=t.sleep)
    c = conn(per_minute=60)
    for _ in range(60):  # the whole burst is still there at the start
        assert rl.try_acquire(c) == 0.0
    assert rl.try_acquire(c) == pytest.approx(1.5)  # 1 s per call at 60/min, after the 0.5 s allowance
    t.now += 1.0
    assert rl.try_acquire(c) > 0
    t.now += 0.5
    assert rl.try_acquire(c) == 0.0
    # After a long idle the bucket refills to capacity less rate x transit (60 - 0.5): 59 calls.
    t.now += 3600.0
    for _ in range(59):
        assert rl.try_acquire(c) == 0.0
    assert rl.try_acquire(c) > 0
