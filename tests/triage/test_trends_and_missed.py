"""Trend rules (weight gain over 24 h / 7 days) and the missed-reading check with a controllable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.readings_support import add_patient, add_program, assign, make_world, use_hub_database, weight
from tests.support import api_client
from vitalbridge.cli import app
from vitalbridge.devices.models import Device
from vitalbridge.patients.models import Patient, PatientStatus
from vitalbridge.runtime import Hub
from vitalbridge.triage.codes import AlertStatus
from vitalbridge.triage.missed import check_missed_readings
from vitalbridge.triage.models import Alert, AlertEvent

SCALE = "SCALE-1"


def alerts_by_rule(hub: Hub) -> dict[str, Alert]:
    with hub.sessions() as session:
        return {a.rule_code: a for a in session.scalars(select(Alert))}


def test_weight_gain_within_24_hours(hub: Hub) -> None:
    world = make_world(hub)
    patient = add_patient(hub, world)
    now = datetime.now(UTC)
    with api_client(hub) as client:
        assign(client, world, SCALE, patient)
        world.post(client, weight("w1", 80.0, at=now - timedelta(days=8)))  # outside both windows
        world.post(client, weight("w2", 80.6, at=now - timedelta(hours=20)))
        world.post(client, weight("w3", 81.5, at=now - timedelta(hours=10)))
        assert alerts_by_rule(hub) == {}
        world.post(client, weight("w4", 82.6, at=now - timedelta(minutes=5)))
    found = alerts_by_rule(hub)
    assert set(found) == {"weight_gain_24h"}  # +2.0 kg over 80.6; over 7 days also only +2.0
    assert found["weight_gain_24h"].detail["rise"] == 2.0
    assert found["weight_gain_24h"].detail["window_hours"] == 24


def test_weight_gain_within_7_days_in_pounds(hub: Hub) -> None:
    world = make_world(hub)
    patient = add_patient(hub, world)
    now = datetime.now(UTC)
    lb = 1 / 0.45359237
    with api_client(hub) as client:
        assign(client, world, SCALE, patient)
        for i, (kg, ago) in enumerate(
            [(80.0, timedelta(days=6)), (81.0, timedelta(days=3)), (81.5, timedelta(hours=30))]
        ):
            world.post(client, weight(f"w{i}", round(kg * lb, 1), unit="lb", at=now - ago))
        assert alerts_by_rule(hub) == {}
        world.post(client, weight("w9", round(82.6 * lb, 1), unit="lb", at=now - timedelta(minutes=5)))
    found = alerts_by_rule(hub)
    assert set(found) == {"weight_gain_7d"}  # nothing within 24 h to compare with; +2.6 kg over 6 days
    assert found["weight_gain_7d"].severity.value == "high"


def test_a_program_can_tighten_trends_and_a_patient_can_switch_them_off(hub: Hub) -> None:
    world = make_world(hub)
    chf = add_program(hub, world, "chf", {"trends": [{"code": "weight_gain_24h", "rise": 1.0, "severity": "critical"}]})
    tight = add_patient(hub, world, ehr_id="tight", program_id=chf)
    off = add_patient(hub, world, ehr_id="off", program_id=chf)
    now = datetime.now(UTC)
    with api_client(hub) as client:
        put = client.put(
            f"/api/v1/patients/{off}/thresholds",
            json={"trends": [{"code": "weight_gain_24h", "enabled": False}]},
            headers=world.clinician,
        )
        assert put.status_code == 200, put.text
        for pid, scale in ((tight, "S-T"), (off, "S-O")):
            assign(client, world, scale, pid)
            world.post(client, weight(f"{scale}-1", 80.0, device=scale, at=now - timedelta(hours=5)))
            world.post(client, weight(f"{scale}-2", 81.2, device=scale, at=now - timedelta(minutes=5)))
    with hub.sessions() as session:
        rows = session.execute(select(Alert.patient_id, Alert.rule_code, Alert.severity)).all()
    assert [(p, r, s.value) for p, r, s in rows] == [(tight, "weight_gain_24h", "critical")]


def _age_assignment(hub: Hub, serial: str, days: int) -> None:
    """History set-up: the device was handed out ``days`` ago."""
    with hub.sessions() as session, session.begin():
        device = session.scalars(select(Device).where(Device.serial == serial)).one()
        device.assigned_at = datetime.now(UTC) - timedelta(days=days)


def test_missed_readings_open_once_and_resolve_when_readings_resume(hub: Hub) -> None:
    world = make_world(hub)
    quiet = add_patient(hub, world, ehr_id="quiet")
    fresh = add_patient(hub, world, ehr_id="fresh")  # just got the scale: not overdue
    add_patient(hub, world, ehr_id="no-device")  # nothing assigned: not watched
    gone = add_patient(hub, world, ehr_id="inactive")
    now = datetime.now(UTC)
    with api_client(hub) as client:
        assign(client, world, SCALE, quiet)
        assign(client, world, "S-FRESH", fresh)
        assign(client, world, "S-GONE", gone)
        world.post(client, weight("q1", 80.0, at=now - timedelta(days=5)))
    _age_assignment(hub, SCALE, 10)
    _age_assignment(hub, "S-GONE", 10)
    with hub.sessions() as session, session.begin():
        session.get(Patient, gone).status = PatientStatus.inactive  # type: ignore[union-attr]

    with hub.sessions() as session, session.begin():
        early = check_missed_readings(session, now=now - timedelta(days=3))  # 2 days after the reading
    assert (early.checked, early.opened) == (2, 0)
    for _ in range(2):  # a second run does not raise a second alert or touch the first
        with hub.sessions() as session, session.begin():
            check_missed_readings(session, now=now)
    (alert,) = alerts_by_rule(hub).values()
    assert (alert.rule_code, alert.patient_id, alert.severity.value) == ("missed_readings", quiet, "medium")
    assert alert.detail["days"] == 3
    with hub.sessions() as session:
        assert session.scalars(select(AlertEvent.kind)).all() == ["opened"]

    with api_client(hub) as client:
        world.post(client, weight("q2", 80.1, at=now))
    with hub.sessions() as session, session.begin():
        summary = check_missed_readings(session, now=now + timedelta(minutes=1))
    assert summary.resolved == 1
    (alert,) = alerts_by_rule(hub).values()
    assert alert.status is AlertStatus.resolved
    assert alert.resolved_by == "service:triage"


def test_missed_check_honours_the_program_and_runs_from_the_cli(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world(hub)
    weekly = add_program(hub, world, "weekly", {"missed": {"days": 7}})
    relaxed = add_patient(hub, world, ehr_id="relaxed", program_id=weekly)
    strict = add_patient(hub, world, ehr_id="strict")
    with api_client(hub) as client:
        assign(client, world, "S-1", relaxed)
        assign(client, world, "S-2", strict)
    use_hub_database(hub, monkeypatch)
    in_five_days = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    result = CliRunner().invoke(app, ["triage", "check-missed", "--now", in_five_days])
    assert result.exit_code == 0, result.output
    assert "checked 2 patients: 1 alerts opened" in result.output
    assert {a.patient_id for a in alerts_by_rule(hub).values()} == {strict}
    assert CliRunner().invoke(app, ["triage", "check-missed", "--now", "2025-01-01T00:00:00"]).exit_code == 2
