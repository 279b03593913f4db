"""The fake FCM endpoint says no where FCM would (it is a stand-in, not a yes-machine)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.notify.support import Fcm, fcm_token
from vitalbridge.notify.fake_fcm_rules import validate_message
from vitalbridge.notify.fcm import ServiceAccount


def _token(fcm: Fcm) -> str:
    account = ServiceAccount.load(fcm.credentials)
    resp = httpx.post(
        f"{fcm.url}/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": account.assertion(_now())},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    return str(body["access_token"])


def _now() -> float:
    import time

    return time.time()


def _send(fcm: Fcm, body: Any, access: str | None, project: str = "vb-test-project") -> httpx.Response:
    headers = {"Authorization": f"Bearer {access}"} if access else {}
    return httpx.post(f"{fcm.url}/v1/projects/{project}/messages:send", json=body, headers=headers)


def test_sends_need_a_live_access_token(fcm: Fcm) -> None:
    body = {"message": {"token": fcm_token(), "notification": {"title": "t", "body": "b"}}}
    missing = _send(fcm, body, None)
    assert missing.status_code == 401
    assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
    assert _send(fcm, body, "ya29.made-up").status_code == 401
    access = _token(fcm)
    assert _send(fcm, body, access).status_code == 200
    fcm.fake.revoke_access_tokens()
    assert _send(fcm, body, access).status_code == 401


def test_the_fake_refuses_an_old_assertion(fcm: Fcm) -> None:
    account = ServiceAccount.load(fcm.credentials)
    resp = httpx.post(
        f"{fcm.url}/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": account.assertion(_now() - 7200),
        },
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"notification": {"title": "x"}}, "message"),  # no target
        ({"token": "a" * 30, "topic": "news"}, "message"),  # two targets
        ({"token": "a" * 30, "data": {"n": 1}}, "message.data"),  # data values are strings
        ({"token": "a" * 30, "data": {"google.x": "1"}}, "message.data.google.x"),
        ({"token": "a" * 30, "patient": "x"}, "message.patient"),
        ({"token": "a" * 30, "android": {"priority": "URGENT"}}, "message.android.priority"),
        ({"token": "a" * 30, "android": {"ttl": "10 minutes"}}, "message.android.ttl"),
        ({"token": "a" * 30, "android": {"notification": {"subtitle": "x"}}}, "message.android.notification.subtitle"),
        ({"token": "a" * 30, "apns": {"headers": {"apns-priority": "7"}}}, "message.apns.headers"),
        ({"token": "a" * 30, "apns": {"headers": {"apns-collapse-id": "x" * 65}}}, "message.apns.headers"),
        (
            {"token": "a" * 30, "apns": {"payload": {"aps": {"content-available": 2}}}},
            "message.apns.payload.aps.content-available",
        ),
        ({"token": "a" * 30, "data": {"k": "v" * 5000}}, "message.data"),
    ],
)
def test_malformed_messages_are_refused_with_the_field(message: dict[str, Any], field: str) -> None:
    problem = validate_message(message)
    assert problem is not None
    assert problem[0] == field


def test_errors_come_in_fcms_v1_shape_and_faults_are_controllable(fcm: Fcm) -> None:
    access = _token(fcm)
    token = fcm_token()
    body = {"message": {"token": token, "data": {"a": "b"}}}
    bad = _send(fcm, {"message": {"token": token, "data": {"a": 1}}}, access)
    assert bad.status_code == 400
    detail = bad.json()["error"]["details"][0]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert detail["fieldViolations"][0]["field"] == "message.data"
    not_a_token = _send(fcm, {"message": {"token": "nope", "data": {}}}, access)
    assert not_a_token.json()["error"]["details"] == [
        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"}
    ]
    assert httpx.post(f"{fcm.url}/_fake/faults", json={"error": "BOGUS"}).status_code == 422
    added = httpx.post(f"{fcm.url}/_fake/faults", json={"error": "QUOTA_EXCEEDED", "times": 2, "retry_after": 9})
    assert added.status_code == 201
    for _ in range(2):
        throttled = _send(fcm, body, access)
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "9"
        assert throttled.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert _send(fcm, body, access).status_code == 200
    assert _send(fcm, body, access, project="other-project").status_code == 403
    stats = httpx.get(f"{fcm.url}/_fake/stats").json()
    assert stats["accepted"] == 1
    listed = httpx.get(f"{fcm.url}/_fake/messages").json()
    assert listed["count"] == 1
    assert httpx.delete(f"{fcm.url}/_fake/messages").status_code == 200
    assert httpx.get(f"{fcm.url}/_fake/messages").json()["count"] == 0
