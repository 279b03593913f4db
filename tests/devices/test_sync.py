"""Batch sync (SPEC §5): pull a window from the gateway's REST API (the simulator, on loopback), idempotently."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from tests.readings_support import ADMIN, bp, count, make_world
from tests.support import api_client
from vitalbridge.audit.models import AuditEntry
from vitalbridge.delivery.models import OutboxEntry
from vitalbridge.devices import gateway_service
from vitalbridge.devices.models import QuarantinedPayload, Reading
from vitalbridge.devices.simulator import GatewaySimulator, make_record, synthetic_readings
from vitalbridge.devices.sync import sync_gateway
from vitalbridge.errors import UpstreamError
from vitalbridge.runtime import Hub
from vitalbridge.servers import ServerThread

START = datetime(2025, 3, 1, tzinfo=UTC)
API_KEY = "sim-api-key-1"


def configure(hub: Hub, gateway_id: str, url: str, key: str = API_KEY) -> None:
    with hub.sessions() as session, session.begin():
        gateway_service.set_api(session, hub.sealer, gateway_id, api_base_url=url, api_key=key, actor=ADMIN)


def test_sync_pages_through_the_window_and_is_idempotent(hub: Hub) -> None:
    world = make_world(hub)
    records = synthetic_readings(
        [("BP-1", "blood_pressure"), ("SC-1", "weight"), ("GL-1", "glucose"), ("OX-1", "pulse_oximetry")],
        START,
        per_device=6,
    )
    outside = make_record(
        "outside", "BP-1", "blood_pressure", START + timedelta(days=30), {"systolic": 120, "diastolic": 80}
    )
    sim = GatewaySimulator(API_KEY, [*records, outside])
    until = START + timedelta(days=10)
    with ServerThread(sim.app) as url:
        configure(hub, world.gateway_id, url)
        first = sync_gateway(hub, world.gateway_id, START, until, page_size=10)
        assert (first.pages, first.records, first.stored, first.duplicates, first.quarantined) == (3, 24, 24, 0, 0)
        again = sync_gateway(hub, world.gateway_id, START, until, page_size=7)
        assert (again.records, again.stored, again.duplicates) == (24, 0, 24)
    assert count(hub, Reading) == 24
    # BP and oximetry carry a pulse: 6x2 + 6 + 6 + 6x2 measurements, one outbox row each.
    assert count(hub, OutboxEntry) == 36
    with hub.sessions() as session:
        gw = gateway_service.get_gateway(session, world.gateway_id)
        assert gw.synced_until == until
        pages = session.scalars(select(AuditEntry).where(AuditEntry.action == "gateway.sync")).all()
        assert len(pages) == 3 + 4
        assert {p.status_code for p in pages} == {200}
        assert all(p.actor == "service:sync" for p in pages)


def test_sync_and_webhooks_never_store_a_reading_twice(hub: Hub) -> None:
    world = make_world(hub)
    record = bp("shared-1", at=START + timedelta(hours=1))
    sim = GatewaySimulator(API_KEY, [record])
    with api_client(hub) as client, ServerThread(sim.app) as url:
        assert world.post(client, record).status_code == 202
        configure(hub, world.gateway_id, url)
        summary = sync_gateway(hub, world.gateway_id, START, START + timedelta(days=1))
    assert (summary.stored, summary.duplicates) == (0, 1)
    assert count(hub, Reading) == 1


def test_bad_records_are_quarantined_one_by_one_and_the_rest_kept(hub: Hub) -> None:
    world = make_world(hub)
    good = bp("good-1", at=START + timedelta(hours=1))
    implausible = bp("bad-1", systolic=500, at=START + timedelta(hours=2))
    broken = {"reading_id": "bad-2", "measured_at": (START + timedelta(hours=3)).isoformat(), "type": "weight"}
    sim = GatewaySimulator(API_KEY, [good, implausible, broken])
    with ServerThread(sim.app) as url:
        configure(hub, world.gateway_id, url)
        summary = sync_gateway(hub, world.gateway_id, START, START + timedelta(days=1))
    assert (summary.stored, summary.quarantined) == (1, 2)
    with hub.sessions() as session:
        items = {q.id: q for q in session.scalars(select(QuarantinedPayload))}
        assert set(items) == set(summary.quarantine_ids)
        reasons = sorted((q.reason.value, q.source.value) for q in items.values())
        assert reasons == [("implausible", "sync"), ("invalid", "sync")]
        assert any(b'"reading_id":"bad-2"' in q.raw_body for q in items.values())


def test_gateway_failures_raise_and_are_audited_and_a_rerun_completes(hub: Hub) -> None:
    world = make_world(hub)
    records = synthetic_readings([("SC-1", "weight")], START, per_device=5)
    sim = GatewaySimulator(API_KEY, records)
    with ServerThread(sim.app) as url:
        configure(hub, world.gateway_id, url)
        sim.fail_next(1, 503)
        with pytest.raises(UpstreamError, match="503"):
            sync_gateway(hub, world.gateway_id, START, START + timedelta(days=5), page_size=2)
        configure(hub, world.gateway_id, url, key="wrong")
        with pytest.raises(UpstreamError, match="401"):
            sync_gateway(hub, world.gateway_id, START, START + timedelta(days=5), page_size=2)
        configure(hub, world.gateway_id, url)
        summary = sync_gateway(hub, world.gateway_id, START, START + timedelta(days=5), page_size=2)
        assert summary.stored == 5
    # A port bound but not listening refuses connections (and stays ours for the test).
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        configure(hub, world.gateway_id, f"http://127.0.0.1:{closed.getsockname()[1]}")
        with pytest.raises(UpstreamError, match="unreachable"):
            sync_gateway(hub, world.gateway_id, START, START + timedelta(days=5), client=httpx.Client(timeout=2))
    with hub.sessions() as session:
        failures = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "gateway.sync", AuditEntry.outcome == "failure")
        ).all()
        assert [(f.status_code, f.detail["reason"]) for f in failures] == [
            (503, "http_status"),
            (401, "http_status"),
            (None, "ConnectError"),
        ]


def test_sync_needs_an_api_and_a_sane_window(hub: Hub) -> None:
    from vitalbridge.errors import ConfigurationError, ValidationFailed

    world = make_world(hub)
    with pytest.raises(ConfigurationError):
        sync_gateway(hub, world.gateway_id, START, START + timedelta(days=1))
    with pytest.raises(ValidationFailed):
        sync_gateway(hub, world.gateway_id, START, START)
    with pytest.raises(ValidationFailed):
        sync_gateway(hub, world.gateway_id, START.replace(tzinfo=None), START + timedelta(days=1))


def test_simulated_readings_are_valid_webhooks(hub: Hub) -> None:
    world = make_world(hub)
    start = datetime.now(UTC) - timedelta(days=5)
    records = synthetic_readings(
        [("BP-9", "blood_pressure"), ("SC-9", "weight"), ("GL-9", "glucose"), ("OX-9", "pulse_oximetry")],
        start,
        per_device=4,
        seed=11,
    )
    assert records == synthetic_readings(
        [("BP-9", "blood_pressure"), ("SC-9", "weight"), ("GL-9", "glucose"), ("OX-9", "pulse_oximetry")],
        start,
        per_device=4,
        seed=11,
    )
    with api_client(hub) as client:
        codes = {world.post(client, r).status_code for r in records}
    assert codes == {202}
    assert count(hub, Reading) == 16
