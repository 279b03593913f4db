"""From a gateway webhook to the clinician's phone (SPEC §1, §5, §6, §8), over real sockets:
the hub's webhook and API, the fake FCM server, and the in-process push service."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.notify.support import Fcm, add_device, fcm_token, pushes, received
from tests.readings_support import add_patient, assign, bp, make_world
from tests.support import api_client
from vitalbridge.db.base import utcnow
from vitalbridge.notify.background import close_sender, run_once
from vitalbridge.patients.models import Patient, Provider
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.settings import Settings
from vitalbridge.triage.models import Alert, AlertEvent


def _provider_user(hub: Hub, patient_id: str) -> str:
    with hub.sessions() as session:
        user_id = session.scalar(
            select(Provider.user_id).join(Patient, Patient.provider_id == Provider.id).where(Patient.id == patient_id)
        )
    assert user_id is not None
    return user_id


def test_an_alert_updated_five_times_pushes_exactly_twice(push_hub: Hub, fcm: Fcm) -> None:
    world = make_world(push_hub)
    patient = add_patient(push_hub, world, with_provider_user=True)
    phone = fcm_token()
    add_device(push_hub, world.org_id, _provider_user(push_hub, patient), phone)
    with api_client(push_hub) as client:
        assert assign(client, world, "356938035643809", patient).status_code == 200
        for i in range(6):  # one reading opens the alert, five more update it
            resp = world.post(client, bp(f"crit-{i}", systolic=186 + i, diastolic=95))
            assert resp.status_code == 202, resp.text
            run_once(push_hub)
        with push_hub.sessions() as session:
            alert = session.scalars(select(Alert)).one()
            kinds = [e.kind.value for e in session.scalars(select(AlertEvent).order_by(AlertEvent.seq))]
        assert alert.occurrences == 6
        assert kinds.count("opened") == 1
        assert kinds.count("updated") + kinds.count("escalated") == 5
        ack = client.post(f"/api/v1/alerts/{alert.id}/acknowledge", json={}, headers=world.clinician)
        assert ack.status_code == 200
        resolved = client.post(f"/api/v1/alerts/{alert.id}/resolve", json={"note": "ok"}, headers=world.clinician)
        assert resolved.status_code == 200
        run_once(push_hub, now=utcnow() + timedelta(minutes=1))
    messages = received(fcm)
    assert [(m["token"], m["data"]["action"], m["data"]["alert_id"]) for m in messages] == [
        (phone, "open_alert", alert.id),
        (phone, "alert_resolved", alert.id),
    ]
    assert len(pushes(push_hub)) == 2


@pytest.fixture
def live_hub(settings: Settings, fcm: Fcm) -> Iterator[Hub]:
    h = build_hub(
        settings.model_copy(
            update={
                "fcm_credentials_file": fcm.credentials,
                "fcm_endpoint": fcm.url,
                "inprocess_worker": True,
                "push_sweep_interval_s": 0.05,
            }
        )
    )
    yield h
    close_sender(h)
    h.close()


def test_the_hub_runs_the_push_service_in_process(live_hub: Hub, fcm: Fcm) -> None:
    world = make_world(live_hub)
    patient = add_patient(live_hub, world, with_provider_user=True)
    add_device(live_hub, world.org_id, _provider_user(live_hub, patient), fcm_token())
    with api_client(live_hub, background=True) as client:
        assert assign(client, world, "356938035643809", patient).status_code == 200
        assert world.post(client, bp("live-1", systolic=195, diastolic=99)).status_code == 202
        deadline = time.monotonic() + 20
        while not fcm.fake.messages and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [m["message"]["data"]["action"] for m in fcm.fake.messages] == ["open_alert"]
