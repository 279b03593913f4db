"""Quiet hours (SPEC §6): non-critical pushes are deferred to the window's end, not dropped;
critical alerts come through at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

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
    resolve_alert,
)
from tests.support import api_client
from vitalbridge.errors import ValidationFailed
from vitalbridge.notify.background import run_once
from vitalbridge.notify.codes import PushStatus
from vitalbridge.notify.quiet import Window
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Role
from vitalbridge.triage.codes import Severity

CHICAGO = "America/Chicago"
# 23:30 in Chicago on a winter night (UTC-6): inside 22:00-07:00, which ends at 13:00 UTC.
NIGHT = datetime(2026, 1, 15, 5, 30, tzinfo=UTC)
MORNING = datetime(2026, 1, 15, 13, 0, tzinfo=UTC)


def test_windows_cross_midnight_and_follow_the_zone() -> None:
    w = Window.parse(CHICAGO, "22:00", "07:00")
    assert w.quiet_until(NIGHT) == MORNING
    assert w.quiet_until(datetime(2026, 1, 15, 12, 59, tzinfo=UTC)) == MORNING  # 06:59 local
    assert w.quiet_until(MORNING) is None  # 07:00 local: over
    assert w.quiet_until(datetime(2026, 1, 15, 20, 0, tzinfo=UTC)) is None  # 14:00 local
    # Summer (UTC-5): the same local window is an hour earlier in UTC.
    assert w.quiet_until(datetime(2026, 7, 15, 4, 0, tzinfo=UTC)) == datetime(2026, 7, 15, 12, 0, tzinfo=UTC)
    day = Window.parse("Europe/Berlin", "12:00", "14:00")
    assert day.quiet_until(datetime(2026, 1, 15, 11, 30, tzinfo=UTC)) == datetime(2026, 1, 15, 13, 0, tzinfo=UTC)
    assert Window.parse(CHICAGO, "07:00", "07:00").quiet_until(NIGHT) is None


def test_invalid_windows_are_refused_field_by_field() -> None:
    with pytest.raises(ValidationFailed) as info:
        Window.parse("Mars/Olympus_Mons", "25:00", "7:00")
    assert {e.loc for e in info.value.field_errors} == {("body", "time_zone"), ("body", "starts"), ("body", "ends")}


def _world(hub: Hub, *, org_default: bool = False) -> tuple[str, str, str]:
    org, practice = make_org(hub)
    doctor = make_clinician(hub, org, "dr@quiet.example")
    add_device(hub, org, doctor.user_id, fcm_token())
    patient = make_patient(hub, org, practice, provider_user_id=doctor.user_id)
    return org, patient, doctor.token


def test_a_non_critical_push_waits_for_the_morning_and_then_goes(push_hub: Hub, fcm: Fcm) -> None:
    org, patient, token = _world(push_hub)
    with api_client(push_hub) as client:
        resp = client.put(
            "/api/v1/me/quiet-hours",
            json={"time_zone": CHICAGO, "starts": "22:00", "ends": "07:00"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["scope"] == "user"
    open_alert(push_hub, org, patient, severity=Severity.high, at=NIGHT)
    summary = run_once(push_hub, now=NIGHT)
    assert summary.dispatch.deferred == 1
    [row] = pushes(push_hub)
    assert (row.status, row.deferred_until, row.next_attempt_at) == (PushStatus.pending, MORNING, MORNING)
    assert run_once(push_hub, now=MORNING - timedelta(minutes=1)).send.claimed == 0  # type: ignore[union-attr]
    assert received(fcm) == []
    assert run_once(push_hub, now=MORNING).send.sent == 1  # type: ignore[union-attr]
    assert [m["data"]["severity"] for m in received(fcm)] == ["high"]


def test_critical_alerts_ignore_quiet_hours_but_their_resolution_waits(push_hub: Hub, fcm: Fcm) -> None:
    org, patient, token = _world(push_hub)
    with api_client(push_hub) as client:
        admin = make_clinician(push_hub, org, "admin@quiet.example", role=Role.admin)
        resp = client.put(
            "/api/v1/notifications/quiet-hours",
            json={"time_zone": CHICAGO, "starts": "22:00", "ends": "07:00"},
            headers=admin.headers,
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["scope"] == "organization"
        # A clinician may read but not change the organization's default.
        assert (
            client.get("/api/v1/notifications/quiet-hours", headers={"Authorization": f"Bearer {token}"}).json()[
                "time_zone"
            ]
            == CHICAGO
        )
        denied = client.put(
            "/api/v1/notifications/quiet-hours",
            json={"time_zone": "UTC", "starts": "00:00", "ends": "01:00"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert denied.status_code == 403
    alert_id = open_alert(push_hub, org, patient, severity=Severity.critical, at=NIGHT)
    run_once(push_hub, now=NIGHT)
    assert [m["data"]["action"] for m in received(fcm)] == ["open_alert"]
    resolve_alert(push_hub, org, alert_id, at=NIGHT + timedelta(minutes=20))
    run_once(push_hub, now=NIGHT + timedelta(minutes=20))
    assert len(received(fcm)) == 1  # nobody is woken to hear that it is over
    run_once(push_hub, now=MORNING)
    assert [m["data"]["action"] for m in received(fcm)] == ["open_alert", "alert_resolved"]


def test_a_users_own_window_wins_over_the_organizations(push_hub: Hub, fcm: Fcm) -> None:
    org, patient, token = _world(push_hub)
    headers = {"Authorization": f"Bearer {token}"}
    admin = make_clinician(push_hub, org, "admin@quiet.example", role=Role.admin)
    with api_client(push_hub) as client:
        org_window = {"time_zone": CHICAGO, "starts": "22:00", "ends": "07:00"}
        assert client.put("/api/v1/notifications/quiet-hours", json=org_window, headers=admin.headers).is_success
        # A night-shift nurse: quiet in the afternoon instead.
        own = {"time_zone": CHICAGO, "starts": "12:00", "ends": "18:00"}
        assert client.put("/api/v1/me/quiet-hours", json=own, headers=headers).is_success
        assert client.get("/api/v1/me/quiet-hours", headers=headers).json()["starts"] == "12:00"
        bad = client.put("/api/v1/me/quiet-hours", json={**own, "time_zone": "Nowhere/Land"}, headers=headers)
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["loc"] == ["body", "time_zone"]
    open_alert(push_hub, org, patient, severity=Severity.medium, at=NIGHT)
    run_once(push_hub, now=NIGHT)
    assert len(received(fcm)) == 1  # night is not quiet for this user
    with api_client(push_hub) as client:
        assert client.delete("/api/v1/me/quiet-hours", headers=headers).status_code == 204
        assert client.get("/api/v1/me/quiet-hours", headers=headers).json() is None
