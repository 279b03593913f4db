"""Push flows under the leak harness (SPEC §8, §9): no PHI, registration token, service-account
key or access token in logs (DEBUG, request bodies included), exceptions, metrics or audit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.leaks import LeakHarness
from tests.notify.support import Fcm, fcm_token, make_clinician, make_org, received
from tests.support import api_client
from vitalbridge.db.base import utcnow
from vitalbridge.notify.background import close_sender, run_once
from vitalbridge.notify.codes import FcmErrorCode
from vitalbridge.notify.fcm import ServiceAccount
from vitalbridge.observability.logging import configure_logging
from vitalbridge.patients.models import Patient, Provider
from vitalbridge.runtime import build_hub
from vitalbridge.settings import Settings
from vitalbridge.triage import alerts
from vitalbridge.triage.codes import Severity

GIVEN, FAMILY = "Philomena", "Grishwald"
MRN = "MRN88PUSH31"
DOB = "1944-02-29"
NOTE = "called Philomena at home, daughter Ottilie answered"
# A program's own rule: its code is the program's text (triage keeps it in its audit entries), so
# it is not searched for here; the push must still carry only the code "other".
RULE = "clinic_special_bp"


@pytest.fixture
def push_leak_harness(
    settings: Settings, fcm: Fcm, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> Iterator[LeakHarness]:
    log_file = tmp_path / "logs" / "hub.log"
    hub = build_hub(
        settings.model_copy(
            update={
                "log_file": log_file,
                "ecw_log_level": "DEBUG",
                "fcm_credentials_file": fcm.credentials,
                "fcm_endpoint": fcm.url,
            }
        )
    )
    configure_logging(hub.settings)
    try:
        yield LeakHarness(hub, log_file, capfd)
    finally:
        close_sender(hub)
        hub.close()


def test_push_flows_leak_nothing(push_leak_harness: LeakHarness, fcm: Fcm) -> None:
    harness = push_leak_harness
    hub = harness.hub
    org, practice = make_org(hub)
    doctor = make_clinician(hub, org, "dr@leaks.example")
    good, gone, mismatched, throttled = fcm_token("good"), fcm_token("gone"), fcm_token("mism"), fcm_token("slow")
    with api_client(hub) as client:
        harness.client = client
        for token in (good, gone, mismatched, throttled):
            resp = client.post(
                "/api/v1/me/push-tokens/", json={"token": token, "platform": "android"}, headers=doctor.headers
            )
            assert resp.status_code == 201, resp.text
        # A registration with a token that fails validation: the 422 must not echo it into logs.
        bad = client.post(
            "/api/v1/me/push-tokens/", json={"token": good + " " + MRN, "platform": "ios"}, headers=doctor.headers
        )
        assert bad.status_code == 422
        with hub.sessions() as session, session.begin():
            provider = Provider(organization_id=org, name=f"Dr {FAMILY}", user_id=doctor.user_id)
            session.add(provider)
            session.flush()
            patient = Patient(
                organization_id=org,
                practice_id=practice,
                ehr_id="leak-push-1",
                mrn=MRN,
                given_name=GIVEN,
                family_name=FAMILY,
                birth_date=date.fromisoformat(DOB),
                provider_id=provider.id,
            )
            session.add(patient)
            session.flush()
            patient_id = patient.id
        fcm.fake.add_fault(FcmErrorCode.UNREGISTERED, token=gone, times=None)
        fcm.fake.add_fault(FcmErrorCode.SENDER_ID_MISMATCH, token=mismatched, times=None)
        fcm.fake.add_fault(FcmErrorCode.QUOTA_EXCEEDED, token=throttled, retry_after=30)
        now = utcnow()
        with hub.sessions() as session, session.begin():
            change = alerts.open_or_update(
                session,
                organization_id=org,
                patient_id=patient_id,
                rule_code=RULE,
                severity=Severity.critical,
                at=now,
                actor="service:test",
                detail={"value": 211.7, "patient": f"{GIVEN} {FAMILY}", "note": NOTE},
            )
            alert_id = change.alert.id
        run_once(hub, now=now)
        run_once(hub, now=now + timedelta(seconds=31))
        resp = client.post(f"/api/v1/alerts/{alert_id}/resolve", json={"note": NOTE}, headers=doctor.headers)
        assert resp.status_code == 200, resp.text
        run_once(hub, now=now + timedelta(minutes=1))
        fcm.fake.revoke_access_tokens()  # forces a 401 and a token refresh in the logs' view
        with hub.sessions() as session, session.begin():
            alerts.open_or_update(
                session,
                organization_id=org,
                patient_id=patient_id,
                rule_code="spo2_low",
                severity=Severity.high,
                at=now,
                actor="service:test",
            )
        run_once(hub, now=now + timedelta(minutes=2))
        messages = received(fcm)
        assert {m["token"] for m in messages} == {good, throttled}
        assert {m["data"]["alert_type"] for m in messages} == {"other", "spo2_low"}
        assert RULE not in json.dumps(messages)
        harness.assert_no_leak(_secrets(fcm, [good, gone, mismatched, throttled]))


def _secrets(fcm: Fcm, tokens: list[str]) -> list[str]:
    document = json.loads(fcm.credentials.read_text())
    key_lines = [line for line in document["private_key"].splitlines() if "PRIVATE KEY" not in line]
    account = ServiceAccount.load(fcm.credentials)
    access_tokens = fcm.fake.issued_access_tokens()
    return [
        GIVEN,
        FAMILY,
        MRN,
        DOB,
        NOTE,
        "Ottilie",
        "211.7",
        *tokens,
        *[t[-40:] for t in tokens],  # no fragment either
        key_lines[3],
        account.private_key_id,
        *access_tokens,
    ]
