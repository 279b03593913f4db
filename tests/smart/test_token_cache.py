"""The token cache's lease (single-flight) rules, driven directly: a holder that died loses
its lease, waiters keep a still-valid token, and nobody waits forever."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from tests.smart.conftest import SmartEnv
from vitalbridge.db.base import utcnow
from vitalbridge.errors import EhrAuthUnavailable
from vitalbridge.smart.models import ACCESS_TOKEN_PURPOSE, EhrToken, GrantKind
from vitalbridge.smart.oauth import TokenResponse
from vitalbridge.smart.token_cache import TokenCache


def counting_fetch(calls: list[int], value: str = "tok") -> object:
    def fetch(_refresh: str | None) -> TokenResponse:
        calls.append(1)
        return TokenResponse(access_token=f"{value}-{len(calls)}", token_type="bearer", expires_in=3600, scope="s")

    return fetch


def cache(env: SmartEnv, **kwargs: float) -> TokenCache:
    return TokenCache(env.hub.sessions, env.hub.sealer, **kwargs)  # type: ignore[arg-type]


def test_a_dead_holders_lease_expires_and_another_worker_takes_over(smart_env: SmartEnv) -> None:
    calls: list[int] = []
    tc = cache(smart_env, lease_s=60, wait_s=5, poll_s=0.01)
    tc.get(smart_env.practice, GrantKind.backend, ("s",), counting_fetch(calls), grant_type="client_credentials")
    # A worker claimed the renewal and died: no token, lease still running.
    with smart_env.hub.sessions() as session, session.begin():
        session.execute(
            update(EhrToken).values(
                access_token_sealed=None,
                expires_at=None,
                lease_owner="dead",
                lease_until=utcnow() + timedelta(seconds=60),
            )
        )
    with pytest.raises(EhrAuthUnavailable, match="timed out waiting"):
        cache(smart_env, wait_s=0.2, poll_s=0.01).get(
            smart_env.practice, GrantKind.backend, ("s",), counting_fetch(calls), grant_type="client_credentials"
        )
    assert len(calls) == 1
    with smart_env.hub.sessions() as session, session.begin():
        session.execute(update(EhrToken).values(lease_until=utcnow() - timedelta(seconds=1)))
    token = tc.get(
        smart_env.practice, GrantKind.backend, ("s",), counting_fetch(calls), grant_type="client_credentials"
    )
    assert token.value == "tok-2"
    with smart_env.hub.sessions() as session:
        row = session.scalars(select(EhrToken)).one()
        assert row.lease_owner is None
        assert smart_env.hub.sealer.open_text(row.access_token_sealed or b"", ACCESS_TOKEN_PURPOSE) == "tok-2"


def test_while_one_worker_renews_the_others_use_the_current_token(smart_env: SmartEnv) -> None:
    calls: list[int] = []
    tc = cache(smart_env)
    first = tc.get(
        smart_env.practice, GrantKind.backend, ("s",), counting_fetch(calls), grant_type="client_credentials"
    )
    with smart_env.hub.sessions() as session, session.begin():
        session.execute(update(EhrToken).values(renew_at=utcnow() - timedelta(seconds=1)))
    release = threading.Event()
    entered = threading.Event()

    def slow_fetch(_refresh: str | None) -> TokenResponse:
        entered.set()
        release.wait(10)
        return TokenResponse(access_token="renewed", token_type="bearer", expires_in=3600, scope="s")

    renewer = threading.Thread(
        target=lambda: tc.get(
            smart_env.practice, GrantKind.backend, ("s",), slow_fetch, grant_type="client_credentials"
        )
    )
    renewer.start()
    assert entered.wait(10)
    # Renewal in flight: another worker gets the still-valid token at once, without fetching.
    other = tc.get(
        smart_env.practice, GrantKind.backend, ("s",), counting_fetch(calls), grant_type="client_credentials"
    )
    assert other.value == first.value
    release.set()
    renewer.join(10)
    latest = tc.get(
        smart_env.practice, GrantKind.backend, ("s",), counting_fetch(calls), grant_type="client_credentials"
    )
    assert latest.value == "renewed"
    assert len(calls) == 1


def test_token_metrics_count_requests(smart_env: SmartEnv) -> None:
    labels = {"grant_type": "client_credentials", "outcome": "success"}
    before = REGISTRY.get_sample_value("vitalbridge_ehr_token_requests_total", labels) or 0.0
    smart_env.client().get(smart_env.practice, "metadata")
    smart_env.client().get(smart_env.practice, "metadata")
    assert REGISTRY.get_sample_value("vitalbridge_ehr_token_requests_total", labels) == before + 1
    calls = REGISTRY.get_sample_value(
        "vitalbridge_ehr_requests_total", {"interaction": "capabilities", "result": "2xx"}
    )
    assert calls is not None
    assert calls >= 2
