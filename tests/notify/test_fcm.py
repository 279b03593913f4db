"""The FCM HTTP v1 client against the fake FCM server over loopback (SPEC §8).

Service-account OAuth (RFC 7523 §2.1 JWT bearer grant, RS256), the access-token cache, and the
classification of every documented FCM error into prune / retry / permanent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from joserfc import jwt

from tests.notify.conftest import PROJECT
from tests.notify.support import Fcm, fcm_token
from vitalbridge.errors import ConfigurationError
from vitalbridge.notify.codes import AlertType, FcmErrorCode, PushAction, SendOutcome
from vitalbridge.notify.fake_fcm import FakeFcm, ServiceAccountKey
from vitalbridge.notify.fcm import SCOPE, FcmSender, ServiceAccount, classify, parse_retry_after
from vitalbridge.notify.sanitizer import PushNotice, build_message
from vitalbridge.servers import ServerThread
from vitalbridge.triage.codes import Severity


def _message(token: str | None = None) -> dict[str, object]:
    notice = PushNotice(uuid.uuid4(), AlertType.glucose_low, Severity.critical, PushAction.open_alert)
    return build_message(notice, token or fcm_token())


@pytest.fixture
def sender(fcm: Fcm) -> Iterator[FcmSender]:
    s = FcmSender(ServiceAccount.load(fcm.credentials), endpoint=fcm.url)
    yield s
    s.close()


def test_a_message_is_accepted_with_a_cached_access_token(sender: FcmSender, fcm: Fcm) -> None:
    for _ in range(3):
        result = sender.send(_message())
        assert result.outcome is SendOutcome.sent
        assert result.message_name is not None
        assert result.message_name.startswith(f"projects/{PROJECT}/messages/")
    assert fcm.fake.token_requests == 1  # one OAuth round trip for three sends
    assert len(fcm.fake.messages) == 3


def test_the_assertion_is_rs256_with_googles_claims(fcm: Fcm) -> None:
    account = ServiceAccount.load(fcm.credentials)
    token = jwt.decode(account.assertion(1_700_000_000), fcm.account.public_key, algorithms=["RS256"])
    assert token.header["alg"] == "RS256"
    assert token.header["kid"] == fcm.account.key_id
    claims = token.claims
    assert claims["iss"] == fcm.account.client_email
    assert claims["scope"] == SCOPE
    assert claims["aud"] == f"{fcm.url}/token"
    assert claims["exp"] - claims["iat"] == 3600


def test_the_fake_refuses_an_assertion_signed_by_another_key(fcm: Fcm, tmp_path: Path) -> None:
    impostor = ServiceAccountKey(PROJECT, fcm.account.client_email)
    path = impostor.write(tmp_path / "impostor.json", f"{fcm.url}/token")
    sender = FcmSender(ServiceAccount.load(path), endpoint=fcm.url)
    try:
        result = sender.send(_message())
    finally:
        sender.close()
    assert result.outcome is SendOutcome.permanent
    assert result.status_code == 400
    assert result.operator_message is not None
    assert "invalid_grant" in result.operator_message
    assert fcm.fake.messages == []


def test_the_fake_refuses_a_wrong_audience_and_scope(fcm: Fcm) -> None:
    account = ServiceAccount.load(fcm.credentials)
    wrong_aud = ServiceAccount(
        account.client_email,
        account.private_key_id,
        "https://oauth2.googleapis.com/token",
        PROJECT,
        account.private_key,
    )
    resp = httpx.post(
        f"{fcm.url}/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": wrong_aud.assertion(_now())},
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"
    resp = httpx.post(f"{fcm.url}/token", data={"grant_type": "client_credentials"})
    assert resp.json()["error"] == "unsupported_grant_type"


def _now() -> float:
    return datetime.now(UTC).timestamp()


def test_an_expired_access_token_is_refreshed_once(sender: FcmSender, fcm: Fcm) -> None:
    assert sender.send(_message()).outcome is SendOutcome.sent
    fcm.fake.revoke_access_tokens()  # FCM answers 401 UNAUTHENTICATED to the cached token
    assert sender.send(_message()).outcome is SendOutcome.sent
    assert fcm.fake.token_requests == 2


def test_unregistered_and_invalid_tokens_are_to_be_pruned(sender: FcmSender, fcm: Fcm) -> None:
    gone = sender.send(_message("unregistered-" + fcm_token()))
    assert (gone.outcome, gone.status_code, gone.error_code) == (SendOutcome.prune_token, 404, "UNREGISTERED")
    # A token-shaped value FCM does not know as a token: INVALID_ARGUMENT with an FcmError detail.
    token = fcm_token()
    fcm.fake.add_fault(FcmErrorCode.INVALID_ARGUMENT, token=token)
    bad = sender.send(_message(token))
    assert (bad.outcome, bad.status_code, bad.error_code) == (SendOutcome.prune_token, 400, "INVALID_ARGUMENT")


def test_a_malformed_message_is_a_permanent_defect_not_a_bad_token(sender: FcmSender, fcm: Fcm) -> None:
    message = _message()
    message["message"]["data"]["alert_id"] = 12  # type: ignore[index]
    result = sender.send(message)
    assert result.outcome is SendOutcome.permanent
    assert result.status_code == 400
    assert result.operator_message is not None
    assert "message.data" in result.operator_message


@pytest.mark.parametrize(
    ("error", "status"),
    [(FcmErrorCode.QUOTA_EXCEEDED, 429), (FcmErrorCode.UNAVAILABLE, 503), (FcmErrorCode.INTERNAL, 500)],
)
def test_transient_errors_are_retried_with_retry_after(
    sender: FcmSender, fcm: Fcm, error: FcmErrorCode, status: int
) -> None:
    fcm.fake.add_fault(error, retry_after=42)
    result = sender.send(_message())
    assert (result.outcome, result.status_code, result.error_code) == (SendOutcome.retry, status, error.value)
    assert result.retry_after_s == 42
    assert sender.send(_message()).outcome is SendOutcome.sent  # the fault was for one call


@pytest.mark.parametrize(
    ("error", "status", "hint"),
    [
        (FcmErrorCode.SENDER_ID_MISMATCH, 403, "another Firebase project"),
        (FcmErrorCode.THIRD_PARTY_AUTH_ERROR, 401, "APNs"),
    ],
)
def test_configuration_errors_are_permanent_with_an_operator_message(
    sender: FcmSender, fcm: Fcm, error: FcmErrorCode, status: int, hint: str
) -> None:
    token = fcm_token()
    fcm.fake.add_fault(error, token=token, times=None)
    result = sender.send(_message(token))
    assert (result.outcome, result.status_code, result.error_code) == (SendOutcome.permanent, status, error.value)
    assert result.operator_message is not None
    assert hint in result.operator_message
    assert token not in result.operator_message


def test_a_wrong_project_is_permanent(fcm: Fcm) -> None:
    sender = FcmSender(ServiceAccount.load(fcm.credentials), endpoint=fcm.url, project_id="someone-elses")
    try:
        result = sender.send(_message())
    finally:
        sender.close()
    assert (result.outcome, result.status_code) == (SendOutcome.permanent, 403)
    assert result.operator_message is not None
    assert "someone-elses" in result.operator_message


def test_an_unreachable_fcm_is_transient(tmp_path: Path) -> None:
    account = ServiceAccountKey(PROJECT)
    fake = FakeFcm(account)
    with ServerThread(fake.app) as url:
        path = account.write(tmp_path / "sa.json", f"{url}/token")
    sender = FcmSender(ServiceAccount.load(path), endpoint=url, timeout_s=2)
    try:
        result = sender.send(_message())  # the token endpoint is gone too
    finally:
        sender.close()
    assert result.outcome is SendOutcome.retry


def test_classification_of_bodies_without_fcm_details() -> None:
    assert classify(503, {}, None, project_id="p").outcome is SendOutcome.retry
    assert classify(502, {"error": {"status": "UNAVAILABLE"}}, "7", project_id="p").retry_after_s == 7
    assert classify(404, {}, None, project_id="p").outcome is SendOutcome.prune_token
    assert classify(418, {}, None, project_id="p").outcome is SendOutcome.permanent
    token_violation = {
        "error": {
            "status": "INVALID_ARGUMENT",
            "details": [
                {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"},
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": "message.token", "description": "bad"}],
                },
            ],
        }
    }
    assert classify(400, token_violation, None, project_id="p").outcome is SendOutcome.prune_token


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90
    assert parse_retry_after("999999", now=now) == 3600  # capped
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_service_account_errors_name_the_problem_not_the_key(tmp_path: Path) -> None:
    path = tmp_path / "sa.json"
    with pytest.raises(ConfigurationError, match="cannot read"):
        ServiceAccount.load(path)
    path.write_text("{not json")
    with pytest.raises(ConfigurationError, match="not JSON"):
        ServiceAccount.load(path)
    path.write_text(json.dumps({"type": "service_account", "client_email": "x@y"}))
    with pytest.raises(ConfigurationError, match="missing private_key, token_uri"):
        ServiceAccount.load(path)
    secret = "-----BEGIN PRIVATE KEY-----\nAAAAsecretmaterial\n-----END PRIVATE KEY-----\n"
    path.write_text(json.dumps({"client_email": "x@y", "token_uri": "http://t", "private_key": secret}))
    with pytest.raises(ConfigurationError, match="not an RSA private key") as info:
        ServiceAccount.load(path)
    assert "secretmaterial" not in str(info.value)
    public = ServiceAccountKey().public_key.as_pem(private=False).decode()
    path.write_text(json.dumps({"client_email": "x@y", "token_uri": "http://t", "private_key": public}))
    with pytest.raises(ConfigurationError, match="no private key"):
        ServiceAccount.load(path)
    good = ServiceAccountKey("").document("http://t")
    path.write_text(json.dumps(good))
    with pytest.raises(ConfigurationError, match="project id"):
        FcmSender(ServiceAccount.load(path))
