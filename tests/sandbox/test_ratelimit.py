"""Per-practice rate limiting, token requests included (SPEC §7, §11; eCW 250/min per practice)."""

from __future__ import annotations

import random

from tests.sandbox.conftest import SandboxFactory
from tests.sandbox.support import OTHER_PRACTICE, PRACTICE
from vitalbridge.sandbox.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_fhir_requests_over_the_limit_get_429_with_retry_after(make_sandbox: SandboxFactory) -> None:
    sb = make_sandbox(rate_limit_per_minute=6)
    sb.register("c", client_secret="s", practices=[PRACTICE, OTHER_PRACTICE])
    token = sb.basic_token("c", "s", scope=None)  # charged to both practices: 5 calls left each
    statuses = [sb.get("Patient", token, params={"_count": 1}).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]

    limited = sb.get("metadata", None)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    outcome = limited.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "throttled"
    assert sb.stats()["rate_limited_by_practice"][PRACTICE] == 2


def test_practices_have_separate_budgets_and_token_calls_count(make_sandbox: SandboxFactory) -> None:
    sb = make_sandbox(rate_limit_per_minute=3)
    sb.register("a", client_secret="s", practices=[PRACTICE])
    sb.register("b", client_secret="s", practices=[OTHER_PRACTICE])
    sb.basic_token("a", "s")
    sb.basic_token("a", "s")
    token_b = sb.basic_token("b", "s")
    assert sb.get("metadata", None).status_code == 200
    assert sb.get("metadata", None).status_code == 429

    throttled = sb.request_token({"grant_type": "client_credentials"}, auth=("a", "s"))
    assert throttled.status_code == 429
    assert throttled.json()["error"] == "temporarily_unavailable"
    assert int(throttled.headers["retry-after"]) >= 1

    assert sb.get("Patient", token_b, OTHER_PRACTICE).status_code == 200
    stats = sb.stats()
    assert stats["token_requests_by_practice"] == {PRACTICE: 3, OTHER_PRACTICE: 1}
    assert stats["token_requests_by_client"] == {"a": 3, "b": 1}


def test_a_client_pacing_at_the_limit_is_never_refused() -> None:
    clock = FakeClock()
    limiter = RateLimiter(250, clock)
    rng = random.Random(5)
    interval = 60 / 250
    send_at = clock.now
    for _ in range(2000):
        send_at += interval
        # Network jitter delays arrivals by up to 200 ms but never reorders the client's pacing.
        clock.now = max(clock.now, send_at + rng.uniform(0, 0.2))
        assert limiter.acquire(["P"]) is None


def test_a_burst_past_the_budget_is_told_how_long_to_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock)
    assert all(limiter.acquire(["P"]) is None for _ in range(60))
    assert limiter.acquire(["P"]) == 1
    clock.now += 0.5
    assert limiter.acquire(["P"]) == 1
    clock.now += 0.5
    assert limiter.acquire(["P"]) is None
    assert limiter.acquire(["Q"]) is None


def test_zero_disables_the_limit() -> None:
    limiter = RateLimiter(0, FakeClock())
    assert all(limiter.acquire(["P"]) is None for _ in range(1000))
