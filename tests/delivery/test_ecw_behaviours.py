"""Delivery against each eCW behaviour pinned alone (SPEC §11 last paragraph, field notes Q5):
the sandbox starts as the textbook ``generic`` server and a test switches on exactly one eCW
behaviour, so a failure names the behaviour the hub mishandles."""

from __future__ import annotations

import collections
import copy
import math
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from tests.delivery.support import (
    PRACTICE,
    Env,
    Sandbox,
    ScriptedEhr,
    hub_http,
    identifiers,
    make_env,
    post_readings,
    record,
    sandbox,
)
from vitalbridge.delivery.deliver import deliver
from vitalbridge.delivery.models import OutboxEntry, OutboxStatus
from vitalbridge.devices.simulator import post_webhook
from vitalbridge.ehr.client import EhrClient
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.ehr.models import RateBucket
from vitalbridge.ehr.ratelimit import practice_key
from vitalbridge.errors import EhrRateLimited
from vitalbridge.runtime import Hub
from vitalbridge.sandbox.profile import Profile
from vitalbridge.servers import ServerThread
from vitalbridge.smart.services import smart_for
from vitalbridge.tenancy.models import Practice


@pytest.fixture
def generic(hub: Hub) -> Iterator[tuple[Env, Sandbox]]:
    with sandbox(profile=Profile.generic) as sb:
        yield make_env(hub, sb.url, ehr_patient_id=sb.patient_id()), sb


def one_weight(env: Env) -> str:
    """Post one weight reading (one Observation); returns its outbox id."""
    before = {r.id for r in env.rows()}
    with hub_http(env.hub) as url, httpx.Client(timeout=30) as client:
        resp = post_webhook(client, url, env.gateway_id, env.gateway_secret, record(env, 2))
        assert resp.status_code in (200, 202), resp.text
    (new,) = [r.id for r in env.rows() if r.id not in before]
    return new


def row(env: Env, outbox_id: str) -> OutboxEntry:
    with env.hub.sessions() as session:
        found = session.get(OutboxEntry, outbox_id)
        assert found is not None
        return found


def deliver_all(env: Env, rounds: int = 40) -> None:
    """Deliver every pending row (the conftest makes retries due at once) until none is left."""
    for _ in range(rounds):
        pending = [r.id for r in env.rows() if r.status is OutboxStatus.pending]
        if not pending:
            return
        for outbox_id in pending:
            deliver(env.hub, outbox_id)
    raise AssertionError(env.statuses())


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- no conditional create --------------------------------------------------------------------


def test_without_conditional_create_ambiguous_failures_are_still_delivered_once(
    generic: tuple[Env, Sandbox],
) -> None:
    env, sb = generic
    sb.behave(conditional_create="ignore")
    # Half the creates are stored and then answered 503 or dropped: the ambiguous failure that a
    # retry with If-None-Exist would absorb on a textbook server, and duplicate on eCW.
    sb.faults(after_commit_rate=0.5, seed=5)
    with hub_http(env.hub) as url:
        expected = post_readings(env, url, 8)
    searches_before = metric("vitalbridge_delivery_ehr_calls_total", practice_id=env.practice_id, kind="search")
    deliver_all(env)
    assert env.statuses() == {"delivered": expected}
    stored = identifiers(sb.observations())
    assert [k for k, n in collections.Counter(stored).items() if n > 1] == []
    assert len(stored) == expected
    stats = sb.stats()
    assert stats["faults_injected"]["after_commit"] > 0
    assert stats["conditional_matches"] == 0  # the server never helped
    # Every retry searched first, and those searches are in the practice's budget and metrics.
    assert stats["fhir_requests_by_kind"]["search"] >= stats["faults_injected"]["after_commit"]
    searches = metric("vitalbridge_delivery_ehr_calls_total", practice_id=env.practice_id, kind="search")
    assert searches - searches_before == stats["fhir_requests_by_kind"]["search"]
    with env.hub.sessions() as session:
        bucket = session.get(RateBucket, practice_key(env.practice_id))
        assert bucket is not None  # the searches took slots from the practice's bucket
    # /metrics reports what each delivered Observation cost in EHR calls.
    with hub_http(env.hub) as url:
        scraped = httpx.get(f"{url}/metrics", timeout=30).text
    line = next(
        x
        for x in scraped.splitlines()
        if x.startswith(f'vitalbridge_delivery_ehr_calls_per_observation{{practice_id="{env.practice_id}"}}')
    )
    assert float(line.split()[-1]) > 1.0  # creates plus the searches and retries the faults caused


# A reclaimed row (its worker died after the EHR's 201) is searched before it is sent again:
# test_crash_after_201.py, which runs against the default (ecw) sandbox.


# -- eCW numeric error codes ------------------------------------------------------------------


def _resource(env: Env, outbox_id: str, change: Any) -> None:
    with env.hub.sessions() as session, session.begin():
        entry = session.get(OutboxEntry, outbox_id)
        assert entry is not None
        resource = copy.deepcopy(entry.resource)
        change(resource)
        entry.resource = resource


def test_308_write_back_user_missing_is_a_dead_letter_for_the_practice_admin(generic: tuple[Env, Sandbox]) -> None:
    env, sb = generic
    sb.behave(ecw_error_codes=True, writeback_user_missing=[PRACTICE])
    outbox_id = one_weight(env)
    assert deliver(env.hub, outbox_id).status == "dead"
    dead = row(env, outbox_id)
    assert (dead.dead_reason, dead.last_status_code) == ("practice_setup", 400)
    assert dead.last_error is not None
    assert "write-back user not configured for this practice: ask the practice admin" in dead.last_error
    assert "308" in dead.last_error
    assert sb.stats()["fhir_requests_by_kind"]["create"] == 1  # needs a human: not retried


@pytest.mark.parametrize(
    ("code", "change"),
    [
        (611, lambda r: r["valueQuantity"].update(code="bpm")),
        (612, lambda r: r["valueQuantity"].pop("value")),
        (613, lambda r: r["code"]["coding"][0].update(code="1234-5")),
    ],
)
def test_invalid_data_codes_are_dead_letters_saying_what_to_fix(
    generic: tuple[Env, Sandbox], code: int, change: Any
) -> None:
    env, sb = generic
    sb.behave(ecw_error_codes=True)
    outbox_id = one_weight(env)
    _resource(env, outbox_id, change)
    assert deliver(env.hub, outbox_id).status == "dead"
    dead = row(env, outbox_id)
    assert dead.dead_reason == "invalid_data"
    assert dead.last_error is not None
    assert f"eCW {code}" in dead.last_error
    assert "bpm" not in dead.last_error  # the refused value is not repeated
    assert sb.stats()["fhir_requests_by_kind"]["create"] == 1


def test_100_invalid_patient_goes_to_the_patient_re_link(hub: Hub) -> None:
    with sandbox(profile=Profile.generic) as sb:
        env = make_env(hub, sb.url, ehr_patient_id="not-a-patient-of-this-practice")
        sb.behave(ecw_error_codes=True)
        outbox_id = one_weight(env)
        assert deliver(env.hub, outbox_id).status == "dead"
        dead = row(env, outbox_id)
        assert dead.dead_reason == "patient_not_found"
        assert dead.last_error is not None
        # The re-link ran (and found no replacement for a patient that never existed).
        assert dead.last_error.startswith("patient_gone")


@pytest.fixture
def scripted(hub: Hub) -> Iterator[tuple[Env, ScriptedEhr]]:
    ehr = ScriptedEhr(conditional_create=False)
    with ServerThread(ehr.app) as url:
        yield make_env(hub, url, ehr_patient_id="p-1"), ehr


def test_an_unknown_code_with_a_5xx_is_transient(scripted: tuple[Env, ScriptedEhr]) -> None:
    env, ehr = scripted
    ehr.then(503, body={"status": 999, "key": "SERVICE_BUSY", "message": "try later"})
    outbox_id = one_weight(env)
    assert deliver(env.hub, outbox_id).status == "delivered"
    assert (ehr.posts, ehr.searches) == (2, 1)  # retried, after looking first


def test_an_unknown_code_with_a_4xx_is_a_dead_letter_naming_the_code(scripted: tuple[Env, ScriptedEhr]) -> None:
    env, ehr = scripted
    ehr.then(400, body={"status": 777, "key": "SOMETHING_NEW"})
    outbox_id = one_weight(env)
    assert deliver(env.hub, outbox_id).status == "dead"
    dead = row(env, outbox_id)
    assert dead.dead_reason == "rejected"
    assert dead.last_error is not None
    assert "eCW code 777" in dead.last_error


# -- 429 without Retry-After, per wall-clock minute -------------------------------------------


class FakeClock:
    """Wall-clock seconds shared by the hub's limiter and the sandbox's; sleeping moves it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


def test_429_without_retry_after_blocks_to_the_next_minute_and_never_comes_back(hub: Hub) -> None:
    per_minute = 10
    with sandbox(profile=Profile.generic, rate_limit_per_minute=per_minute) as sb:
        env = make_env(hub, sb.url, ehr_patient_id=sb.patient_id(), rate_limit=per_minute)
        sb.behave(rate_limit_window="minute", retry_after_on_429=False)
        clock = FakeClock(math.floor(time.time() / 60) * 60 + 5.0)
        sb.state.limiter.wall_clock = clock
        limiter = smart_for(hub).limiter
        limiter._clock, limiter._sleep, limiter.max_wait_s = clock, clock.sleep, 120.0
        with hub.sessions() as session:
            practice = session.scalars(select(Practice).where(Practice.id == env.practice_id)).one()
            conn = PracticeConnection.of(practice)
        client = EhrClient(hub)
        refused_at: list[float] = []
        answered_at: list[float] = []
        refusals: list[EhrRateLimited] = []
        for _ in range(4 * per_minute):
            try:
                client.get(conn, "metadata")
                answered_at.append(clock.now)
            except EhrRateLimited as exc:
                refusals.append(exc)
                refused_at.append(clock.now)
        assert [e.minute_window for e in refusals] == [True]
        stats = sb.stats()
        # One 429, from the hub's first minute (its bucket carried more than the EHR's minute
        # allows); then the practice waited for the next minute and paced itself per minute.
        assert stats["rate_limited"] == 1
        assert len(refused_at) == 1
        minute_of_429 = math.floor(refused_at[0] / 60)
        after = [t for t in answered_at if t > refused_at[0]]
        assert after
        assert all(math.floor(t / 60) > minute_of_429 for t in after)  # nothing more in that minute
        assert stats["token_requests"] >= 1  # the token call counted in the same minutes
        with hub.sessions() as session:
            bucket = session.get(RateBucket, practice_key(env.practice_id))
            assert bucket is not None
            assert bucket.minute_window


# -- short-lived backend tokens ---------------------------------------------------------------


def test_short_backend_tokens_are_renewed_before_they_expire_under_steady_load(generic: tuple[Env, Sandbox]) -> None:
    env, sb = generic
    # eCW's 300 s, shortened through the control API so the test sees several renewals.
    sb.behave(backend_token_lifetime_s=4)
    with env.hub.sessions() as session:
        conn = PracticeConnection.of(session.get_one(Practice, env.practice_id))
    client = EhrClient(env.hub)
    deadline = time.monotonic() + 9.0
    calls = 0
    while time.monotonic() < deadline:
        assert client.get(conn, "Patient", params={"_count": "1"}).status_code == 200
        calls += 1
        time.sleep(0.05)  # steady load, not a wait for a condition
    stats = sb.stats()
    assert stats["invalid_token_refusals"] == 0  # no call ever reached the EHR with an expired token
    assert stats["token_requests"] >= 2  # renewed ahead of expiry, more than once
    assert stats["token_requests"] < calls
