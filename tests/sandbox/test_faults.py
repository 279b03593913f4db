"""Switchable faults over real HTTP: 5xx, 429, timeouts, connection resets, and the ambiguous
after-commit failure that makes naive clients duplicate (SPEC §7, §11)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.sandbox.support import OTHER_PRACTICE, PRACTICE, Sandbox, vital


@pytest.fixture
def token(sandbox: Sandbox) -> str:
    sandbox.register("c", client_secret="s", practices=[PRACTICE, OTHER_PRACTICE])
    return sandbox.basic_token("c", "s")


@pytest.fixture
def patient(sandbox: Sandbox, token: str) -> str:
    return sandbox.patient_ids(token, count=1)[0]


def _faults(sandbox: Sandbox, **plan: Any) -> None:
    resp = sandbox.http.put("/_sandbox/faults", json=plan)
    assert resp.status_code == 200, resp.text


def test_error_fault_answers_5xx_and_stores_nothing(sandbox: Sandbox, token: str, patient: str) -> None:
    _faults(sandbox, error_rate=1.0, error_status=503)
    resp = sandbox.post_observation(token, vital(patient))
    assert resp.status_code == 503
    assert resp.json()["issue"][0]["code"] == "transient"
    assert sandbox.stored() == []
    assert sandbox.http.delete("/_sandbox/faults").status_code == 200
    assert sandbox.post_observation(token, vital(patient)).status_code == 201
    assert sandbox.stats()["faults_injected"] == {"error": 1}


def test_injected_429_carries_retry_after(sandbox: Sandbox, token: str) -> None:
    _faults(sandbox, rate_429=1.0, retry_after_s=7)
    resp = sandbox.get("Patient", token)
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "7"


def test_reset_drops_the_connection_without_any_http_response(sandbox: Sandbox, token: str, patient: str) -> None:
    _faults(sandbox, reset_rate=1.0)
    with pytest.raises(httpx.TransportError):
        sandbox.post_observation(token, vital(patient))
    with pytest.raises(httpx.TransportError):
        sandbox.get("Patient", token)
    assert sandbox.stored() == []
    assert sandbox.stats()["faults_injected"] == {"reset": 2}


@pytest.mark.parametrize("action", ["error", "drop"])
def test_after_commit_stores_then_fails(sandbox: Sandbox, token: str, patient: str, action: str) -> None:
    _faults(sandbox, after_commit_rate=1.0, after_commit_action=action, error_status=502)
    reading = vital(patient, identifier="reading-42")
    if action == "error":
        assert sandbox.post_observation(token, reading).status_code == 502
    else:
        with pytest.raises(httpx.TransportError):
            sandbox.post_observation(token, reading)
    stored = sandbox.stored()
    assert len(stored) == 1

    # The client could not know; a retry with conditional create finds the first write.
    sandbox.http.delete("/_sandbox/faults")
    retry = sandbox.post_observation(
        token, reading, **{"If-None-Exist": "identifier=urn:vitalbridge:reading|reading-42"}
    )
    assert retry.status_code == 200
    assert retry.json()["id"] == stored[0]["id"]
    assert len(sandbox.stored()) == 1


def test_timeout_answers_504_after_holding(sandbox: Sandbox, token: str) -> None:
    _faults(sandbox, timeout_rate=1.0, timeout_s=0.05)
    resp = sandbox.get("Patient", token)
    assert resp.status_code == 504
    assert resp.json()["issue"][0]["code"] == "timeout"


def test_timeout_outlasts_the_client_and_releases_when_it_gives_up(sandbox: Sandbox, token: str) -> None:
    _faults(sandbox, timeout_rate=1.0, timeout_s=600)
    with pytest.raises(httpx.ReadTimeout):
        sandbox.get("Patient", token, timeout=0.3)
    sandbox.http.delete("/_sandbox/faults")
    assert sandbox.get("Patient", token).status_code == 200


def test_plan_for_one_practice_leaves_the_other_alone(sandbox: Sandbox, token: str) -> None:
    _faults(sandbox, practice=OTHER_PRACTICE, error_rate=1.0, error_status=500)
    assert sandbox.get("Patient", token, OTHER_PRACTICE).status_code == 500
    assert sandbox.get("Patient", token, PRACTICE).status_code == 200
    assert sandbox.http.get("/_sandbox/stats").status_code == 200


def test_token_endpoint_faults_only_when_asked(sandbox: Sandbox, token: str) -> None:
    _faults(sandbox, error_rate=1.0)
    assert sandbox.request_token({"grant_type": "client_credentials"}, auth=("c", "s")).status_code == 200
    _faults(sandbox, error_rate=1.0, apply_to_token=True)
    resp = sandbox.request_token({"grant_type": "client_credentials"}, auth=("c", "s"))
    assert resp.status_code == 503
    assert resp.json()["error"] == "temporarily_unavailable"


def test_faults_are_reproducible_from_the_seed(sandbox: Sandbox, token: str) -> None:
    def run() -> list[int]:
        _faults(sandbox, error_rate=0.3, rate_429=0.2, seed=42)
        return [sandbox.get("metadata", None).status_code for _ in range(30)]

    first = run()
    assert first == run()
    assert {200, 503, 429} == set(first)


def test_latency_plan_still_answers(sandbox: Sandbox, token: str) -> None:
    _faults(sandbox, latency_ms=20)
    assert sandbox.get("Patient", token).status_code == 200


@pytest.mark.parametrize(
    "plan",
    [
        {"error_rate": 0.7, "reset_rate": 0.5},
        {"error_rate": 1.5},
        {"error_status": 404},
        {"practice": "NOPE", "error_rate": 1.0},
        {"surprise": True},
    ],
)
def test_invalid_plans_are_refused(sandbox: Sandbox, plan: dict[str, Any]) -> None:
    assert sandbox.http.put("/_sandbox/faults", json=plan).status_code == 422
