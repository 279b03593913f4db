"""Escalation of unacknowledged critical alerts with a controllable clock (SPEC §6)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from tests.notify.support import (
    Fcm,
    acknowledge_alert,
    add_device,
    fcm_token,
    make_clinician,
    make_org,
    make_patient,
    make_program,
    open_alert,
    received,
)
from tests.readings_support import use_hub_database
from vitalbridge.audit.models import AuditEntry
from vitalbridge.cli import app as cli
from vitalbridge.db.base import utcnow
from vitalbridge.notify.background import dispatch, escalate, run_once
from vitalbridge.notify.models import AlertEscalation
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Role
from vitalbridge.triage.codes import AlertEventKind, Severity
from vitalbridge.triage.models import AlertEvent


def _events(hub: Hub, alert_id: str) -> list[AlertEvent]:
    with hub.sessions() as session:
        return list(session.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.seq)))


def _escalated_tokens(fcm: Fcm) -> list[str]:
    return [m["token"] for m in received(fcm) if m["data"]["action"] == "alert_escalated"]


def test_an_unacknowledged_critical_alert_escalates_once_to_the_on_call_list(push_hub: Hub, fcm: Fcm) -> None:
    org, practice = make_org(push_hub)
    doctor = make_clinician(push_hub, org, "dr@esc.example")
    on_call = make_clinician(push_hub, org, "oncall@esc.example")
    doctor_phone, on_call_phone = fcm_token("doc"), fcm_token("oncall")
    add_device(push_hub, org, doctor.user_id, doctor_phone)
    add_device(push_hub, org, on_call.user_id, on_call_phone)
    program = make_program(push_hub, org, "HTN", on_call=[doctor.user_id, on_call.user_id])
    patient = make_patient(push_hub, org, practice, provider_user_id=doctor.user_id, program_id=program)
    t0 = utcnow()
    alert_id = open_alert(push_hub, org, patient, severity=Severity.critical, at=t0)
    run_once(push_hub, now=t0)
    assert [m["token"] for m in received(fcm)] == [doctor_phone]

    minutes = push_hub.settings.escalation_minutes
    before = run_once(push_hub, now=t0 + timedelta(minutes=minutes) - timedelta(seconds=1))
    assert before.escalation.escalated == 0
    assert _escalated_tokens(fcm) == []

    due = run_once(push_hub, now=t0 + timedelta(minutes=minutes))
    assert due.escalation.escalated == 1
    # The on-call list minus the assignee, who already has it.
    assert _escalated_tokens(fcm) == [on_call_phone]
    kinds = [e.kind for e in _events(push_hub, alert_id)]
    assert kinds == [AlertEventKind.opened, AlertEventKind.escalated]
    escalated = _events(push_hub, alert_id)[-1]
    assert escalated.severity is Severity.critical
    assert escalated.actor == "service:push"
    with push_hub.sessions() as session:
        [row] = session.scalars(select(AlertEscalation)).all()
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "alert.escalated")).all()
    assert row.target_user_ids == [on_call.user_id]
    assert row.event_seq == escalated.seq
    assert len(audit) == 1

    later = run_once(push_hub, now=t0 + timedelta(minutes=minutes * 3))
    assert later.escalation.escalated == 0
    assert len(_escalated_tokens(fcm)) == 1


def test_acknowledged_and_non_critical_alerts_do_not_escalate(push_hub: Hub, fcm: Fcm) -> None:
    org, practice = make_org(push_hub)
    doctor = make_clinician(push_hub, org, "dr@esc.example")
    add_device(push_hub, org, doctor.user_id, fcm_token())
    make_clinician(push_hub, org, "admin@esc.example", role=Role.admin)
    patient = make_patient(push_hub, org, practice, provider_user_id=doctor.user_id)
    t0 = utcnow()
    handled = open_alert(push_hub, org, patient, severity=Severity.critical, at=t0)
    open_alert(push_hub, org, patient, severity=Severity.high, rule_code="spo2_low", at=t0)
    acknowledge_alert(push_hub, org, handled, at=t0 + timedelta(minutes=2))
    summary = run_once(push_hub, now=t0 + timedelta(hours=2))
    assert summary.escalation.checked == 0
    assert summary.escalation.escalated == 0
    assert _escalated_tokens(fcm) == []


def test_the_clock_starts_when_the_alert_became_critical(push_hub: Hub) -> None:
    org, practice = make_org(push_hub)
    doctor = make_clinician(push_hub, org, "dr@esc.example")
    patient = make_patient(push_hub, org, practice, provider_user_id=doctor.user_id)
    t0 = utcnow()
    open_alert(push_hub, org, patient, severity=Severity.high, at=t0)
    raised = t0 + timedelta(minutes=30)
    open_alert(push_hub, org, patient, severity=Severity.critical, at=raised)  # severity escalation
    minutes = push_hub.settings.escalation_minutes
    assert run_once(push_hub, now=raised + timedelta(minutes=minutes - 1)).escalation.escalated == 0
    assert run_once(push_hub, now=raised + timedelta(minutes=minutes)).escalation.escalated == 1


def test_a_program_override_and_the_admin_fallback(push_hub: Hub, fcm: Fcm) -> None:
    org, practice = make_org(push_hub)
    doctor = make_clinician(push_hub, org, "dr@esc.example")
    admin = make_clinician(push_hub, org, "admin@esc.example", role=Role.admin)
    admin_phone = fcm_token("admin")
    add_device(push_hub, org, admin.user_id, admin_phone)
    program = make_program(push_hub, org, "CHF", on_call=[], escalation_minutes=5)
    patient = make_patient(push_hub, org, practice, provider_user_id=doctor.user_id, program_id=program)
    t0 = utcnow()
    open_alert(push_hub, org, patient, severity=Severity.critical, at=t0)
    assert run_once(push_hub, now=t0 + timedelta(minutes=4)).escalation.escalated == 0
    assert run_once(push_hub, now=t0 + timedelta(minutes=5)).escalation.escalated == 1
    # No on-call list: the organization's admins are told, so an escalation always reaches someone.
    assert _escalated_tokens(fcm) == [admin_phone]


def test_an_escalation_push_is_dropped_if_the_alert_was_acknowledged_before_it_went_out(
    push_hub: Hub, fcm: Fcm
) -> None:
    org, practice = make_org(push_hub)
    doctor = make_clinician(push_hub, org, "dr@esc.example")
    on_call = make_clinician(push_hub, org, "oncall@esc.example")
    add_device(push_hub, org, on_call.user_id, fcm_token())
    program = make_program(push_hub, org, "HTN", on_call=[on_call.user_id])
    patient = make_patient(push_hub, org, practice, provider_user_id=doctor.user_id, program_id=program)
    t0 = utcnow()
    alert_id = open_alert(push_hub, org, patient, severity=Severity.critical, at=t0)
    due = t0 + timedelta(minutes=push_hub.settings.escalation_minutes)
    escalate(push_hub, now=due)
    dispatch(push_hub, now=due)
    acknowledge_alert(push_hub, org, alert_id, at=due)
    summary = run_once(push_hub, now=due, escalation=False).send
    assert summary is not None
    assert summary.cancelled == 1
    assert _escalated_tokens(fcm) == []


def test_the_escalation_job_runs_from_the_cli_with_a_given_clock(push_hub: Hub, monkeypatch: object) -> None:
    org, practice = make_org(push_hub)
    doctor = make_clinician(push_hub, org, "dr@esc.example")
    patient = make_patient(push_hub, org, practice, provider_user_id=doctor.user_id)
    t0 = utcnow()
    alert_id = open_alert(push_hub, org, patient, severity=Severity.critical, at=t0)
    use_hub_database(push_hub, monkeypatch)
    runner = CliRunner()
    early = runner.invoke(cli, ["alerts", "escalate", "--now", (t0 + timedelta(minutes=1)).isoformat()])
    assert early.exit_code == 0, early.output
    assert "0 escalated" in early.output
    due = runner.invoke(cli, ["alerts", "escalate", "--now", (t0 + timedelta(hours=1)).isoformat()])
    assert due.exit_code == 0, due.output
    assert "1 escalated" in due.output
    assert [e.kind for e in _events(push_hub, alert_id)][-1] is AlertEventKind.escalated
    naive = runner.invoke(cli, ["alerts", "escalate", "--now", "2026-01-01T00:00:00"])
    assert naive.exit_code != 0
