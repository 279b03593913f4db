"""The push outbox over loopback (SPEC §8): pruning, retries honouring Retry-After, permanent
failures, giving up, and crashed senders — on SQLite and PostgreSQL, with a controllable clock."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.notify.support import (
    Fcm,
    add_device,
    fcm_token,
    make_clinician,
    make_org,
    make_patient,
    open_alert,
    pushes,
    received,
)
from vitalbridge.audit.models import AuditEntry
from vitalbridge.db.base import utcnow
from vitalbridge.notify import outbox
from vitalbridge.notify.background import close_sender, dispatch, run_once
from vitalbridge.notify.codes import FcmErrorCode, PushStatus, TokenStatus
from vitalbridge.notify.models import PushDevice
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.triage.codes import Severity


def _setup(hub: Hub, *tokens: str) -> tuple[str, str, list[str]]:
    org, practice = make_org(hub)
    doctor = make_clinician(hub, org, "dr@outbox.example")
    devices = [add_device(hub, org, doctor.user_id, t) for t in tokens]
    patient = make_patient(hub, org, practice, provider_user_id=doctor.user_id)
    return org, patient, devices


def _device(hub: Hub, device_id: str) -> PushDevice:
    with hub.sessions() as session:
        return session.get_one(PushDevice, device_id)


def _audit(hub: Hub, action: str) -> list[AuditEntry]:
    with hub.sessions() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)))


def test_an_unregistered_token_is_pruned_and_never_used_again(push_hub: Hub, fcm: Fcm) -> None:
    dead, alive = "unregistered-" + fcm_token(), fcm_token()
    org, patient, (dead_id, alive_id) = _setup(push_hub, dead, alive)
    now = utcnow()
    open_alert(push_hub, org, patient, at=now)
    summary = run_once(push_hub, now=now).send
    assert summary is not None
    assert (summary.sent, summary.pruned) == (1, 1)
    assert _device(push_hub, dead_id).status is TokenStatus.pruned
    assert _device(push_hub, dead_id).prune_reason == "unregistered"
    assert _device(push_hub, alive_id).status is TokenStatus.active
    [failed] = _audit(push_hub, "push.failed")
    assert failed.status_code == 404
    assert failed.detail["error_code"] == "UNREGISTERED"
    assert dead not in str(failed.detail)
    assert len(_audit(push_hub, "push_device.pruned")) == 1

    # The next alert goes to the live device only.
    open_alert(push_hub, org, patient, rule_code="spo2_low", at=now + timedelta(minutes=1))
    run_once(push_hub, now=now + timedelta(minutes=1))
    tokens = [a["token"] for a in fcm.fake.attempts]
    assert tokens.count(dead) == 1
    assert tokens.count(alive) == 2


def test_an_invalid_token_is_pruned_and_its_queued_pushes_cancelled(push_hub: Hub, fcm: Fcm) -> None:
    token = fcm_token()
    org, patient, (device_id,) = _setup(push_hub, token)
    now = utcnow()
    open_alert(push_hub, org, patient, at=now)
    open_alert(push_hub, org, patient, rule_code="spo2_low", at=now)
    dispatch(push_hub, now=now)
    fcm.fake.add_fault(FcmErrorCode.INVALID_ARGUMENT, token=token, times=None)
    with push_hub.sessions() as session, session.begin():
        first = outbox.claim(session, owner="w1", now=now, lease_s=60, limit=1)
    assert len(first) == 1
    # A second sender runs the rest: it gets the fault, prunes, and cancels the other queued push.
    summary = run_once(push_hub, now=now, escalation=False).send
    assert summary is not None
    assert summary.pruned == 1
    assert _device(push_hub, device_id).status is TokenStatus.pruned
    assert sorted(p.status for p in pushes(push_hub)) == sorted([PushStatus.in_flight, PushStatus.dead])
    # The first sender's claim expires; its row is requeued and then cancelled: the device is pruned.
    later = now + timedelta(seconds=61)
    summary = run_once(push_hub, now=later, escalation=False).send
    assert summary is not None
    assert summary.requeued == 1
    assert summary.cancelled == 1
    assert sorted(p.status for p in pushes(push_hub)) == sorted([PushStatus.cancelled, PushStatus.dead])
    assert received(fcm) == []


def test_quota_exceeded_waits_for_retry_after_then_succeeds(push_hub: Hub, fcm: Fcm) -> None:
    org, patient, _ = _setup(push_hub, fcm_token())
    now = utcnow()
    open_alert(push_hub, org, patient, at=now)
    fcm.fake.add_fault(FcmErrorCode.QUOTA_EXCEEDED, retry_after=120)
    summary = run_once(push_hub, now=now).send
    assert summary is not None
    assert summary.retried == 1
    [row] = pushes(push_hub)
    assert row.status is PushStatus.pending
    assert row.attempts == 1
    assert row.last_error == "QUOTA_EXCEEDED"
    assert row.last_status_code == 429
    assert row.next_attempt_at == now + timedelta(seconds=120)  # Retry-After beats the ~10 s backoff
    [failed] = _audit(push_hub, "push.failed")
    assert failed.detail["outcome"] == "retry"

    assert run_once(push_hub, now=now + timedelta(seconds=119)).send.claimed == 0  # type: ignore[union-attr]
    assert received(fcm) == []
    summary = run_once(push_hub, now=now + timedelta(seconds=120)).send
    assert summary is not None
    assert summary.sent == 1
    [row] = pushes(push_hub)
    assert (row.status, row.attempts) == (PushStatus.sent, 2)
    assert len(received(fcm)) == 1


def test_unavailable_and_internal_back_off_then_succeed(push_hub: Hub, fcm: Fcm) -> None:
    org, patient, _ = _setup(push_hub, fcm_token())
    now = utcnow()
    open_alert(push_hub, org, patient, at=now)
    fcm.fake.add_fault(FcmErrorCode.UNAVAILABLE)
    fcm.fake.add_fault(FcmErrorCode.INTERNAL)
    clock = now
    outcomes = []
    for _ in range(3):
        summary = run_once(push_hub, now=clock, escalation=False).send
        assert summary is not None
        outcomes += summary.outcomes
        [row] = pushes(push_hub)
        if row.status is PushStatus.pending:
            waited = (row.next_attempt_at - clock).total_seconds()
            # Exponential backoff with jitter: ~10 s after the first failure, ~20 s after the second.
            assert 8 * 2 ** (row.attempts - 1) <= waited <= 12 * 2 ** (row.attempts - 1)
            clock = row.next_attempt_at
    assert outcomes == ["retry", "retry", "sent"]
    assert [a["status"] for a in fcm.fake.attempts] == [503, 500, 200]


def test_a_push_fcm_keeps_refusing_is_given_up_after_its_max_age(push_hub: Hub, fcm: Fcm) -> None:
    org, patient, _ = _setup(push_hub, fcm_token())
    now = utcnow()
    open_alert(push_hub, org, patient, at=now)
    fcm.fake.add_fault(FcmErrorCode.UNAVAILABLE, times=None)
    run_once(push_hub, now=now)
    late = now + timedelta(hours=push_hub.settings.push_max_age_hours, seconds=1)
    summary = run_once(push_hub, now=late, escalation=False).send
    assert summary is not None
    assert summary.dead == 1
    [row] = pushes(push_hub)
    assert row.status is PushStatus.dead
    assert row.last_error is not None
    assert row.last_error.startswith("UNAVAILABLE: gave up")


def test_sender_id_mismatch_is_dead_without_pruning(push_hub: Hub, fcm: Fcm) -> None:
    token = "sender-mismatch-" + fcm_token()
    org, patient, (device_id,) = _setup(push_hub, token)
    now = utcnow()
    open_alert(push_hub, org, patient, at=now)
    summary = run_once(push_hub, now=now).send
    assert summary is not None
    assert summary.dead == 1
    [row] = pushes(push_hub)
    assert (row.status, row.last_error, row.last_status_code) == (PushStatus.dead, "SENDER_ID_MISMATCH", 403)
    assert _device(push_hub, device_id).status is TokenStatus.active  # a configuration problem, not the phone's
    [failed] = _audit(push_hub, "push.failed")
    assert failed.detail["outcome"] == "permanent"


def test_third_party_auth_error_is_permanent(push_hub: Hub, fcm: Fcm) -> None:
    org, patient, _ = _setup(push_hub, fcm_token())
    fcm.fake.add_fault(FcmErrorCode.THIRD_PARTY_AUTH_ERROR)
    now = utcnow()
    open_alert(push_hub, org, patient, at=now)
    run_once(push_hub, now=now)
    [row] = pushes(push_hub)
    assert (row.status, row.last_error, row.last_status_code) == (PushStatus.dead, "THIRD_PARTY_AUTH_ERROR", 401)
    assert run_once(push_hub, now=now + timedelta(hours=1)).send.claimed == 0  # type: ignore[union-attr]


def test_a_crashed_sender_lease_expires_and_the_push_goes_out(push_hub: Hub, fcm: Fcm) -> None:
    org, patient, _ = _setup(push_hub, fcm_token())
    now = utcnow()
    open_alert(push_hub, org, patient, severity=Severity.high, at=now)
    dispatch(push_hub, now=now)
    with push_hub.sessions() as session, session.begin():
        assert len(outbox.claim(session, owner="crashed", now=now, lease_s=60)) == 1
    assert run_once(push_hub, now=now + timedelta(seconds=30)).send.claimed == 0  # type: ignore[union-attr]
    summary = run_once(push_hub, now=now + timedelta(seconds=61)).send
    assert summary is not None
    assert (summary.requeued, summary.sent) == (1, 1)
    [row] = pushes(push_hub)
    assert row.attempts == 2
    assert len(received(fcm)) == 1


def test_without_fcm_credentials_pushes_wait_in_the_outbox(hub: Hub) -> None:
    org, patient, _ = _setup(hub, fcm_token())
    now = utcnow()
    open_alert(hub, org, patient, at=now)
    summary = run_once(hub, now=now)
    assert summary.send is None
    assert summary.dispatch.queued == 1
    assert [p.status for p in pushes(hub)] == [PushStatus.pending]


def test_pushes_queued_too_long_ago_are_not_sent_late(hub: Hub, fcm: Fcm) -> None:
    org, patient, _ = _setup(hub, fcm_token())
    now = utcnow()
    open_alert(hub, org, patient, at=now)
    run_once(hub, now=now)  # FCM not configured yet: queued
    configured = build_hub(
        hub.settings.model_copy(update={"fcm_credentials_file": fcm.credentials, "fcm_endpoint": fcm.url})
    )
    try:
        late = now + timedelta(hours=hub.settings.push_max_age_hours)
        summary = run_once(configured, now=late).send
    finally:
        close_sender(configured)
        configured.close()
    assert summary is not None
    assert (summary.cancelled, summary.sent) == (1, 0)
    assert [(p.status, p.last_error) for p in pushes(hub)] == [(PushStatus.cancelled, "expired")]
    assert received(fcm) == []
