"""Sandbox profiles (SPEC §11 last paragraph, field notes Q5): ``ecw`` behaves like
eClinicalWorks, ``generic`` like a textbook SMART server, and each behaviour is one switch of
``PUT /_sandbox/behaviour`` that a test can flip alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.sandbox.conftest import BASE_CONFIG, SandboxFactory
from tests.sandbox.support import OTHER_PRACTICE, PRACTICE, Sandbox, bp_panel, vital
from vitalbridge.sandbox.app import create_sandbox_app
from vitalbridge.sandbox.config import SandboxConfig
from vitalbridge.sandbox.profile import Profile
from vitalbridge.servers import ServerThread


def behave(sandbox: Sandbox, **switches: Any) -> dict[str, Any]:
    resp = sandbox.http.put("/_sandbox/behaviour", json=switches)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


@pytest.fixture
def token(sandbox: Sandbox) -> str:
    sandbox.register("writer", client_secret="s", practices=[PRACTICE, OTHER_PRACTICE])
    return sandbox.basic_token("writer", "s")


@pytest.fixture
def patient(sandbox: Sandbox, token: str) -> str:
    return sandbox.patient_ids(token, count=1)[0]


def test_the_default_profile_is_ecw(make_sandbox: SandboxFactory) -> None:
    assert SandboxConfig().profile is Profile.ecw
    sb = make_sandbox(profile=Profile.ecw)
    switches = sb.http.get("/_sandbox/behaviour").json()
    assert switches == {
        "profile": "ecw",
        "conditional_create": "ignore",
        "ecw_error_codes": True,
        "rate_limit_window": "minute",
        "retry_after_on_429": False,
        "backend_token_lifetime_s": 300,
        "single_use_refresh": True,
        "writeback_user_missing": [],
    }
    capability = sb.http.get(f"/fhir/r4/{PRACTICE}/metadata").json()
    (observation,) = [r for r in capability["rest"][0]["resource"] if r["type"] == "Observation"]
    assert observation["conditionalCreate"] is False
    sb.register("c", client_secret="s")
    resp = sb.request_token({"grant_type": "client_credentials"}, auth=("c", "s"))
    assert resp.json()["expires_in"] == 300


def test_generic_advertises_and_honours_conditional_create(sandbox: Sandbox, token: str, patient: str) -> None:
    capability = sandbox.http.get(f"/fhir/r4/{PRACTICE}/metadata").json()
    (observation,) = [r for r in capability["rest"][0]["resource"] if r["type"] == "Observation"]
    assert observation["conditionalCreate"] is True
    header = {"If-None-Exist": "identifier=urn:vitalbridge:reading|r-1"}
    first = sandbox.post_observation(token, vital(patient, identifier="r-1"), **header)
    again = sandbox.post_observation(token, vital(patient, identifier="r-1"), **header)
    assert (first.status_code, again.status_code) == (201, 200)
    assert len(sandbox.stored()) == 1


def test_conditional_create_ignored_alone_creates_a_duplicate(sandbox: Sandbox, token: str, patient: str) -> None:
    switches = behave(sandbox, conditional_create="ignore")
    assert switches["profile"] == "generic"
    assert switches["ecw_error_codes"] is False
    capability = sandbox.http.get(f"/fhir/r4/{PRACTICE}/metadata").json()
    assert all(r.get("conditionalCreate") is not True for r in capability["rest"][0]["resource"])
    header = {"If-None-Exist": "identifier=urn:vitalbridge:reading|r-1"}
    codes = [sandbox.post_observation(token, vital(patient, identifier="r-1"), **header).status_code for _ in range(2)]
    assert codes == [201, 201]
    assert len(sandbox.stored()) == 2  # what a client relying on If-None-Exist would do to eCW


def test_conditional_create_refused_alone(sandbox: Sandbox, token: str, patient: str) -> None:
    behave(sandbox, conditional_create="refuse")
    resp = sandbox.post_observation(token, vital(patient, identifier="r-1"), **{"If-None-Exist": "identifier=x|y"})
    assert resp.status_code == 400
    assert resp.json()["issue"][0]["code"] == "not-supported"
    assert sandbox.stored() == []
    assert sandbox.post_observation(token, vital(patient, identifier="r-1")).status_code == 201


def _unknown_code(resource: dict[str, Any]) -> None:
    resource["code"]["coding"][0]["code"] = "1234-5"


@pytest.mark.parametrize(
    ("mutate", "code", "key", "element"),
    [
        (lambda r: r["valueQuantity"].update(code="bpm"), 611, "INVALID_UNIT", "Observation.valueQuantity.code"),
        (lambda r: r["valueQuantity"].pop("value"), 612, "INVALID_VITAL_VALUE", "Observation.valueQuantity.value"),
        (_unknown_code, 613, "UNSUPPORTED_OBSERVATION", "Observation.code.coding"),
        (lambda r: r["valueQuantity"].update(system="urn:other"), 102, "UNSUPPORTED_CODING_SYSTEM", None),
        (lambda r: r.update(subject={"reference": "Patient/nobody"}), 100, "INVALID_PATIENT", "Observation.subject"),
    ],
)
def test_ecw_error_codes_alone_replace_operation_outcomes(
    sandbox: Sandbox, token: str, patient: str, mutate: Any, code: int, key: str, element: str | None
) -> None:
    resource = vital(patient)
    mutate(resource)
    assert sandbox.post_observation(token, resource).status_code == 422  # generic: an OperationOutcome
    behave(sandbox, ecw_error_codes=True)
    resp = sandbox.post_observation(token, resource)
    assert resp.status_code == 400
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert "resourceType" not in body
    assert (body["status"], body["key"]) == (code, key)
    if element is not None:
        assert body["element"].startswith(element)
    assert "bpm" not in resp.text
    assert "nobody" not in resp.text
    assert sandbox.stored() == []


def test_a_practice_without_write_back_user_gets_308(sandbox: Sandbox, token: str, patient: str) -> None:
    behave(sandbox, ecw_error_codes=True, writeback_user_missing=[PRACTICE])
    resp = sandbox.post_observation(token, bp_panel(patient))
    assert resp.status_code == 400
    assert (resp.json()["status"], resp.json()["key"]) == (308, "DEFAULT_WRITEBACK_USER_NOT_CONFIGURED")
    # Other practices are set up: their writes go through.
    other = sandbox.patient_ids(token, practice=OTHER_PRACTICE, count=1)[0]
    assert sandbox.post_observation(token, bp_panel(other), practice=OTHER_PRACTICE).status_code == 201
    # Without eCW codes it is a plain 403 OperationOutcome.
    behave(sandbox, ecw_error_codes=False)
    assert sandbox.post_observation(token, bp_panel(patient)).json()["issue"][0]["code"] == "forbidden"


def test_unknown_practice_in_a_switch_is_refused(sandbox: Sandbox) -> None:
    resp = sandbox.http.put("/_sandbox/behaviour", json={"writeback_user_missing": ["NOPE"]})
    assert resp.status_code == 422
    assert sandbox.http.put("/_sandbox/behaviour", json={"no_such_switch": True}).status_code == 422


def test_backend_token_lifetime_alone(sandbox: Sandbox) -> None:
    behave(sandbox, backend_token_lifetime_s=7)
    sandbox.register("c", client_secret="s")
    assert sandbox.request_token({"grant_type": "client_credentials"}, auth=("c", "s")).json()["expires_in"] == 7


def test_profile_switch_and_reset(sandbox: Sandbox) -> None:
    assert behave(sandbox, profile="ecw", retry_after_on_429=True)["retry_after_on_429"] is True
    assert sandbox.http.get("/_sandbox/behaviour").json()["rate_limit_window"] == "minute"
    assert sandbox.http.post("/_sandbox/reset").status_code == 200
    assert sandbox.http.get("/_sandbox/behaviour").json()["profile"] == "generic"  # the start-up profile


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def windowed() -> Iterator[tuple[httpx.Client, Clock]]:
    """A 5-calls-a-minute ecw sandbox whose wall clock the test moves."""
    config: SandboxConfig = replace(BASE_CONFIG, profile=Profile.ecw, rate_limit_per_minute=5)
    app = create_sandbox_app(config)
    clock = Clock(1_800_000_010.0)  # 10 s into a minute
    app.state.sandbox.limiter.wall_clock = clock
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http, clock


def test_ecw_minute_window_blocks_until_the_minute_resets_without_retry_after(
    windowed: tuple[httpx.Client, Clock],
) -> None:
    http, clock = windowed
    metadata = f"/fhir/r4/{PRACTICE}/metadata"
    assert [http.get(metadata).status_code for _ in range(5)] == [200] * 5
    refused = http.get(metadata)
    assert refused.status_code == 429
    assert "retry-after" not in refused.headers
    assert refused.json()["issue"][0]["code"] == "throttled"
    clock.now += 45  # still the same minute: still blocked, token calls too
    assert http.get(metadata).status_code == 429
    token = http.post("/oauth/oauth2/token", data={"grant_type": "client_credentials", "aud": _aud(http)})
    assert token.status_code == 429
    assert "retry-after" not in token.headers
    clock.now += 5.5  # the top of the next minute: the counter starts again
    assert [http.get(metadata).status_code for _ in range(5)] == [200] * 5
    assert http.get(metadata).status_code == 429


def test_token_calls_count_in_the_minute(windowed: tuple[httpx.Client, Clock]) -> None:
    http, _clock = windowed
    for _ in range(5):
        http.post("/oauth/oauth2/token", data={"grant_type": "client_credentials", "aud": _aud(http)})
    assert http.get(f"/fhir/r4/{PRACTICE}/metadata").status_code == 429


def _aud(http: httpx.Client) -> str:
    return f"{str(http.base_url).rstrip('/')}/fhir/r4/{PRACTICE}"
