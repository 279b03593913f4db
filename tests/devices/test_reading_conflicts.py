"""A gateway reading id re-sent with different content is a conflict, not a duplicate (issue 10 item 6).

Before: the second body was answered ``200 duplicate`` and dropped without a trace. Now the first
reading stays as it was, the second body is kept byte for byte in quarantine (reason
``conflict``) and the gateway gets 409 ``reading_id_conflict``, which it must not retry. A true
re-delivery — same content, whatever the signature, field order or offset spelling — stays a
quiet 200.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from prometheus_client import REGISTRY
from sqlalchemy import select

from tests.readings_support import bp, count, make_world, recent
from tests.support import api_client
from vitalbridge.audit.models import AuditEntry
from vitalbridge.devices.models import Measurement, QuarantinedPayload, QuarantineReason, Reading
from vitalbridge.devices.simulator import GatewaySimulator, encode
from vitalbridge.devices.sync import sync_gateway
from vitalbridge.runtime import Hub
from vitalbridge.servers import ServerThread

from .test_sync import API_KEY, START, configure


def _conflicts() -> float:
    labels = {"gateway_kind": "mioconnect", "source": "webhook", "outcome": "conflict"}
    return REGISTRY.get_sample_value("vitalbridge_readings_received_total", labels) or 0.0


def _quarantined(hub: Hub) -> list[QuarantinedPayload]:
    with hub.sessions() as session:
        return list(session.scalars(select(QuarantinedPayload).order_by(QuarantinedPayload.received_at)))


def test_same_id_other_content_is_409_quarantined_and_the_first_reading_kept(hub: Hub) -> None:
    world = make_world(hub)
    at = recent()
    first = bp("mc-1", systolic=138, at=at)
    variants = [
        bp("mc-1", systolic=150, at=at),  # another value
        bp("mc-1", systolic=138, at=at + timedelta(minutes=1)),  # another time
        bp("mc-1", systolic=138, at=at, device="356938035643810"),  # another device
        bp("mc-1", systolic=138, at=at, pulse=None),  # a measurement fewer
    ]
    before = _conflicts()
    with api_client(hub) as client:
        made = world.post(client, first)
        assert made.status_code == 202
        for variant in variants:
            resp = world.post(client, variant)
            assert resp.status_code == 409, resp.text
            problem = resp.json()
            assert problem["error"] == "reading_id_conflict"
            assert "quarantine" in problem["detail"]
            assert problem["errors"] == [
                {
                    "loc": ["body", "reading_id"],
                    "msg": "this reading id was already received with different content; the first reading is kept",
                    "type": "reading_id_conflict",
                }
            ]
            assert "mc-1" not in problem["detail"]
        # The first reading is untouched.
        shown = client.get(f"/api/v1/readings/{made.json()['reading_id']}", headers=world.clinician)
        assert shown.status_code == 200
    assert _conflicts() - before == len(variants)
    assert count(hub, Reading) == 1
    with hub.sessions() as session:
        systolic = session.scalars(select(Measurement.systolic).where(Measurement.systolic.is_not(None))).all()
        audits = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "webhook.quarantined").order_by(AuditEntry.seq)
        ).all()
    assert systolic == [138]
    items = _quarantined(hub)
    assert [q.raw_body for q in items] == [encode(v) for v in variants]  # byte for byte
    assert {q.reason for q in items} == {QuarantineReason.conflict}
    assert {q.gateway_reading_id for q in items} == {"mc-1"}
    assert [a.status_code for a in audits] == [409] * len(variants)
    assert all(a.detail["reason"] == "conflict" for a in audits)


def test_the_same_content_under_another_offset_is_a_quiet_duplicate(hub: Hub) -> None:
    world = make_world(hub)
    at = datetime.now(UTC) - timedelta(minutes=5)
    eastern = bp("mc-2", at=at.astimezone(timezone(timedelta(hours=-5))))
    utc = bp("mc-2", at=at)
    with api_client(hub) as client:
        assert world.post(client, eastern).status_code == 202
        again = world.post(client, utc)
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "duplicate"
    assert _quarantined(hub) == []


def test_a_reprocessed_conflict_stays_in_quarantine(hub: Hub) -> None:
    world = make_world(hub)
    at = recent()
    with api_client(hub) as client:
        assert world.post(client, bp("mc-3", at=at)).status_code == 202
        assert world.post(client, bp("mc-3", systolic=151, at=at)).status_code == 409
        item = client.get("/api/v1/quarantine/", headers=world.integration).json()[0]
        assert item["reason"] == "conflict"
        again = client.post(f"/api/v1/quarantine/{item['id']}/reprocess", headers=world.integration)
        assert again.status_code == 422
        assert again.json()["errors"][0]["type"] == "reading_id_conflict"
        assert client.get(f"/api/v1/quarantine/{item['id']}", headers=world.integration).json()["status"] == "open"
    assert count(hub, Reading) == 1


def test_a_sync_page_reusing_an_id_for_other_content_quarantines_that_record_only(hub: Hub) -> None:
    world = make_world(hub)
    kept = bp("sync-1", systolic=120, at=START + timedelta(hours=1))
    changed = bp("sync-1", systolic=160, at=START + timedelta(hours=1))
    fresh = bp("sync-2", at=START + timedelta(hours=2))
    sim = GatewaySimulator(API_KEY, [changed, fresh])
    with api_client(hub) as client, ServerThread(sim.app) as url:
        assert world.post(client, kept).status_code == 202
        configure(hub, world.gateway_id, url)
        summary = sync_gateway(hub, world.gateway_id, START, START + timedelta(days=1))
    assert (summary.stored, summary.quarantined) == (1, 1)
    assert count(hub, Reading) == 2
    [item] = _quarantined(hub)
    assert (item.reason, item.gateway_reading_id) == (QuarantineReason.conflict, "sync-1")
