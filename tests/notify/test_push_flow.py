"""Alert events become pushes: one when an alert opens, one when it resolves (SPEC §6, §8).

Over loopback: the hub's sender talks to the fake FCM server (``fcm`` fixture) in its wire format.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.notify.support import (
    Fcm,
    acknowledge_alert,
    add_device,
    fcm_token,
    make_clinician,
    make_org,
    make_patient,
    open_alert,
    pushes,
    received,
    resolve_alert,
)
from vitalbridge.audit.models import AuditEntry
from vitalbridge.db.base import utcnow
from vitalbridge.notify.background import run_once
from vitalbridge.notify.codes import Platform, PushAction, PushStatus
from vitalbridge.runtime import Hub
from vitalbridge.triage.codes import Severity


def test_an_alert_opening_and_resolving_pushes_twice_to_each_device(push_hub: Hub, fcm: Fcm) -> None:
    org, practice = make_org(push_hub)
    doctor = make_clinician(push_hub, org, "dr@push.example")
    phone, tablet = fcm_token("phone"), fcm_token("tablet")
    add_device(push_hub, org, doctor.user_id, phone, Platform.android)
    add_device(push_hub, org, doctor.user_id, tablet, Platform.ios)
    patient = make_patient(push_hub, org, practice, provider_user_id=doctor.user_id)
    now = utcnow()
    alert_id = open_alert(push_hub, org, patient, severity=Severity.critical, at=now)

    first = run_once(push_hub, now=now)
    assert first.dispatch.queued == 2
    assert first.send is not None
    assert first.send.sent == 2
    messages = received(fcm)
    assert sorted(m["token"] for m in messages) == sorted([phone, tablet])
    for m in messages:
        assert m["data"] == {
            "alert_id": alert_id,
            "alert_type": "bp_systolic_high",
            "severity": "critical",
            "action": "open_alert",
        }
        assert m["android"]["priority"] == "HIGH"
        assert m["apns"]["headers"]["apns-priority"] == "10"

    acknowledge_alert(push_hub, org, alert_id, at=now + timedelta(minutes=1))
    assert run_once(push_hub, now=now + timedelta(minutes=1)).dispatch.queued == 0
    resolve_alert(push_hub, org, alert_id, at=now + timedelta(minutes=2), note="called the patient")
    run_once(push_hub, now=now + timedelta(minutes=2))
    messages = received(fcm)
    assert [m["data"]["action"] for m in messages].count("alert_resolved") == 2
    assert len(messages) == 4
    assert {p.status for p in pushes(push_hub)} == {PushStatus.sent}
    with push_hub.sessions() as session:
        sent = session.scalars(select(AuditEntry).where(AuditEntry.action == "push.sent")).all()
    assert len(sent) == 4
    assert all(e.resource_ids == [alert_id] for e in sent)
    assert all(phone not in str(e.detail) and tablet not in str(e.detail) for e in sent)


def test_repeat_breaches_do_not_push_again(push_hub: Hub, fcm: Fcm) -> None:
    org, practice = make_org(push_hub)
    doctor = make_clinician(push_hub, org, "dr@push.example")
    add_device(push_hub, org, doctor.user_id, fcm_token())
    patient = make_patient(push_hub, org, practice, provider_user_id=doctor.user_id)
    now = utcnow()
    alert_id = open_alert(push_hub, org, patient, severity=Severity.high, at=now)
    for minute in range(1, 5):
        # Folds into the same alert; the last one even raises it to critical (severity escalation).
        severity = Severity.critical if minute == 4 else Severity.high
        assert open_alert(push_hub, org, patient, severity=severity, at=now + timedelta(minutes=minute)) == alert_id
        run_once(push_hub, now=now + timedelta(minutes=minute), escalation=False)
    resolve_alert(push_hub, org, alert_id, at=now + timedelta(minutes=6))
    run_once(push_hub, now=now + timedelta(minutes=6), escalation=False)
    actions = [m["data"]["action"] for m in received(fcm)]
    assert actions == [PushAction.open_alert.value, PushAction.alert_resolved.value]
