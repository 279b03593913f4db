"""Rate-limit acceptance (SPEC §7 "Rate limits", §11): with the EHR's per-minute limit equal to the
practice's, a 30-second run at demand well above the limit gets no 429 and uses at least 95 % of
what the EHR's bucket allows (burst + rate x duration), token requests included.

The sandbox's bucket (sandbox/ratelimit.py) and the hub's (ehr/ratelimit.py) have the same
capacity (the per-minute limit) and the same refill (limit / 60 per second), so a hub pacing
itself right is never refused and wastes little of its budget.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tests.delivery.support import PRACTICE, hub_http, make_env, post_readings, sandbox
from vitalbridge.delivery.worker import Worker
from vitalbridge.runtime import Hub
from vitalbridge.sandbox.profile import Profile

pytestmark = pytest.mark.slow

PER_MINUTE = 300
RUN_S = 30.0
READINGS = 400  # 600 Observations: well above the 450 calls the window allows


def calls_to(stats: dict[str, object], practice: str) -> int:
    fhir = stats["fhir_requests_by_practice"]
    tokens = stats["token_requests_by_practice"]
    assert isinstance(fhir, dict)
    assert isinstance(tokens, dict)
    return int(fhir.get(practice, 0)) + int(tokens.get(practice, 0))


# One 30-second run is enough; SQLite is the embedded default.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_pacing_at_the_ehr_limit_gets_no_429_and_uses_the_budget(hub: Hub) -> None:
    hub.settings.delivery_concurrency = 8
    # The continuous bucket; eCW's minute window is covered by test_ecw_behaviours.
    with sandbox(rate_limit_per_minute=PER_MINUTE, profile=Profile.generic) as sb:
        env = make_env(hub, sb.url, ehr_patient_id=sb.patient_id(), rate_limit=PER_MINUTE)
        with hub_http(hub) as url:
            queued = post_readings(env, url, READINGS)
        before = sb.stats()
        assert calls_to(before, PRACTICE) == 0  # the window starts with the worker

        worker = Worker(hub)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),))
        started = time.monotonic()
        thread.start()
        time.sleep(RUN_S)
        loop.call_soon_threadsafe(worker.stop)
        thread.join(60)
        elapsed = time.monotonic() - started
        loop.close()
        assert not thread.is_alive()

        stats = sb.stats()
        achieved = calls_to(stats, PRACTICE)
        allowed = PER_MINUTE + PER_MINUTE / 60.0 * elapsed
        delivered = env.statuses().get("delivered", 0)
        print(
            f"rate limit: {achieved} calls of {allowed:.0f} allowed ({achieved / allowed:.3f}), {delivered} delivered"
        )
        assert stats["rate_limited"] == 0
        assert delivered < queued  # demand really exceeded the budget
        assert achieved <= allowed + 1
        assert achieved >= 0.95 * allowed
