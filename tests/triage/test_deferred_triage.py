"""Triage never costs a reading: with triage off the hot path, or failing, the sweeper catches up."""

from __future__ import annotations

import time

from sqlalchemy import select

from tests.readings_support import add_patient, assign, bp, count, inserts_fail, make_world
from tests.support import api_client
from vitalbridge.devices.models import Reading
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.triage.background import sweep_once
from vitalbridge.triage.models import Alert


def test_with_triage_off_the_hot_path_the_sweeper_raises_the_alert(hub: Hub) -> None:
    deferred = build_hub(hub.settings.model_copy(update={"triage_inline": False}))
    try:
        world = make_world(deferred)
        patient = add_patient(deferred, world)
        with api_client(deferred) as client:
            assign(client, world, "C-1", patient)
            assert world.post(client, bp("d-1", systolic=185, device="C-1")).status_code == 202
        assert count(deferred, Alert) == 0
        assert count(deferred, Reading, Reading.triaged_at.is_(None)) == 1
        assert sweep_once(deferred) == 1
        assert sweep_once(deferred) == 0  # done once, never twice
        assert count(deferred, Alert) == 1
        assert count(deferred, Reading, Reading.triaged_at.is_(None)) == 0
    finally:
        deferred.close()


def test_a_failing_triage_keeps_the_reading_and_is_retried(hub: Hub) -> None:
    world = make_world(hub)
    patient = add_patient(hub, world)
    with api_client(hub) as client:
        assign(client, world, "C-1", patient)
        with inserts_fail(hub.settings.effective_database_url, "alerts"):
            resp = world.post(client, bp("f-1", systolic=185, device="C-1"))
        assert resp.status_code == 202  # the reading is safe even though triage failed
    with hub.sessions() as session:
        reading = session.scalars(select(Reading)).one()
        assert reading.triaged_at is None
    assert count(hub, Alert) == 0
    assert sweep_once(hub) == 1
    assert count(hub, Alert) == 1


def test_the_hub_runs_the_triage_service_in_process(hub: Hub) -> None:
    settings = hub.settings.model_copy(
        update={"triage_inline": False, "inprocess_worker": True, "triage_sweep_interval_s": 0.05}
    )
    inproc = build_hub(settings)
    try:
        world = make_world(inproc)
        patient = add_patient(inproc, world)
        with api_client(inproc, background=True) as client:
            assign(client, world, "C-1", patient)
            assert world.post(client, bp("bg-1", systolic=185, device="C-1")).status_code == 202
            deadline = time.monotonic() + 20
            while count(inproc, Alert) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert count(inproc, Alert) == 1
    finally:
        inproc.close()
