"""Webhook payloads (SPEC §5): stored whole or not at all, refused precisely, nothing received lost."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client import REGISTRY
from sqlalchemy import select

from tests.readings_support import (
    World,
    add_patient,
    assign,
    bp,
    count,
    glucose,
    inserts_fail,
    make_world,
    recent,
    weight,
)
from tests.support import api_client
from vitalbridge.audit.models import AuditEntry
from vitalbridge.delivery.models import OutboxEntry, OutboxStatus
from vitalbridge.devices.models import Device, Measurement, QuarantinedPayload, QuarantineReason, Reading
from vitalbridge.devices.simulator import encode, post_webhook, signed_headers
from vitalbridge.runtime import Hub

SAMPLES = Path(__file__).parent / "samples"
URL = "/api/v1/webhooks/mioconnect/"


def stored(hub: Hub) -> tuple[int, int, int]:
    return count(hub, Reading), count(hub, Measurement), count(hub, OutboxEntry)


def test_new_reading_commits_reading_measurements_outbox_and_audit_then_202(hub: Hub) -> None:
    world = make_world(hub)
    patient = add_patient(hub, world)
    with api_client(hub) as client:
        assert assign(client, world, "356938035643809", patient).status_code == 200
        resp = world.post(client, bp("mc-1"))
        assert resp.status_code == 202, resp.text
        body = resp.json()
        assert body["status"] == "accepted"
        assert body["delivery"] == "pending"
        assert len(body["measurement_ids"]) == 2  # BP panel + heart rate
        assert resp.headers["X-Request-Id"]
    assert stored(hub) == (1, 2, 2)
    with hub.sessions() as session:
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "webhook.received")).one()
        assert audit.resource_ids == [body["reading_id"]]
        assert audit.actor == f"gateway:{world.gateway_id}"
        assert audit.organization_id == world.org_id
        assert audit.practice_id == world.practice_id
        assert audit.status_code == 202
        assert audit.correlation_id == resp.headers["X-Request-Id"]
        assert audit.detail == {
            "gateway_kind": "mioconnect",
            "source": "webhook",
            "new": 1,
            "duplicates": 0,
            "blocked": 0,
        }
        # No PHI in the audit trail: no values, no device serial.
        dumped = json.dumps([audit.detail, audit.resource_ids])
        assert "138" not in dumped
        assert "356938035643809" not in dumped
        rows = session.scalars(select(OutboxEntry)).all()
        assert {r.status for r in rows} == {OutboxStatus.pending}
        assert all(r.resource["subject"] == {"reference": "Patient/ehr-1001"} for r in rows)
        assert all(r.idempotency_key.endswith("|" + r.measurement_id) for r in rows)
        assert all(r.practice_id == world.practice_id and r.next_attempt_at is not None for r in rows)


def received(outcome: str) -> float:
    labels = {"gateway_kind": "mioconnect", "source": "webhook", "outcome": outcome}
    return REGISTRY.get_sample_value("vitalbridge_readings_received_total", labels) or 0.0


def test_duplicate_gateway_reading_id_is_200_with_the_same_id_and_no_new_rows(hub: Hub) -> None:
    world = make_world(hub)
    accepted, duplicates = received("accepted"), received("duplicate")
    record = bp("mc-dup")
    with api_client(hub) as client:
        first = world.post(client, record)
        assert first.status_code == 202
        before = stored(hub)
        # A re-delivery (new timestamp, new signature, fields reordered, an extra field the hub
        # ignores) is the same reading. Different content under the id is a conflict
        # (tests/devices/test_reading_conflicts.py).
        resent = {**dict(reversed(record.items())), "sent_again": True}
        again = world.post(client, resent, timestamp=int(datetime.now(UTC).timestamp()) + 1)
        assert again.status_code == 200, again.text
        assert again.json() == {
            "status": "duplicate",
            "reading_id": first.json()["reading_id"],
            "gateway_reading_id": "mc-dup",
        }
    assert stored(hub) == before
    assert (received("accepted") - accepted, received("duplicate") - duplicates) == (1, 1)
    with hub.sessions() as session:
        audits = session.scalars(select(AuditEntry).where(AuditEntry.action == "webhook.received")).all()
        assert [(a.status_code, a.detail["duplicates"]) for a in audits] == [(202, 0), (200, 1)]


def test_the_same_reading_id_from_two_gateways_is_two_readings(hub: Hub) -> None:
    world = make_world(hub)
    from tests.readings_support import ADMIN
    from vitalbridge.devices import gateway_service
    from vitalbridge.devices.gateways import GatewayKind

    with hub.sessions() as session, session.begin():
        gw2, secret2 = gateway_service.create_gateway(
            session, hub.sealer, organization_id=world.org_id, kind=GatewayKind.mioconnect, actor=ADMIN
        )
    other = World(**{**world.__dict__, "gateway_id": gw2.id, "secret": secret2})
    with api_client(hub) as client:
        assert world.post(client, bp("same-id")).status_code == 202
        assert other.post(client, bp("same-id")).status_code == 202
    assert count(hub, Reading) == 2


def quarantined(hub: Hub) -> list[QuarantinedPayload]:
    with hub.sessions() as session:
        return list(session.scalars(select(QuarantinedPayload).order_by(QuarantinedPayload.received_at)))


def test_malformed_and_invalid_payloads_are_422_with_field_paths_and_kept_raw(hub: Hub) -> None:
    world = make_world(hub)
    naive = bp("mc-naive")
    naive["measured_at"] = "2025-03-01T08:15:00"
    missing = bp("mc-missing")
    del missing["data"]["diastolic"]
    del missing["device"]
    bodies: list[tuple[bytes, set[tuple[str | int, ...]], QuarantineReason]] = [
        (b'{"reading_id": "mc-x", ', {("body",)}, QuarantineReason.malformed),
        (b"\x89PNG\r\n", {("body",)}, QuarantineReason.malformed),
        (encode(naive), {("body", "measured_at")}, QuarantineReason.invalid),
        (encode(missing), {("body", "device")}, QuarantineReason.invalid),
        (encode(weight("mc-stone", 12, unit="stone")), {("body", "data", "unit")}, QuarantineReason.invalid),
    ]
    with api_client(hub) as client:
        for body, locs, _reason in bodies:
            resp = client.post(URL, content=body, headers=signed_headers(world.gateway_id, world.secret, body))
            assert resp.status_code == 422, resp.text
            problem = resp.json()
            assert {tuple(e["loc"]) for e in problem["errors"]} == locs
            assert "quarantine" in problem["detail"]
        # Once the envelope is right, the data model reports every missing field of its own.
        only_data = bp("mc-data")
        del only_data["data"]["diastolic"]
        resp = world.post(client, only_data)
        assert [e["loc"] for e in resp.json()["errors"]] == [["body", "data", "diastolic"]]
    items = quarantined(hub)
    assert [q.raw_body for q in items[: len(bodies)]] == [b for b, _, _ in bodies]  # byte for byte
    assert [q.reason for q in items[: len(bodies)]] == [r for _, _, r in bodies]
    assert all(q.gateway_id == world.gateway_id and q.organization_id == world.org_id for q in items)
    assert stored(hub) == (0, 0, 0)
    assert count(hub, Device) == 0
    assert count(hub, AuditEntry, AuditEntry.action == "webhook.quarantined") == len(bodies) + 1


def test_implausible_values_are_422_and_quarantined(hub: Hub) -> None:
    world = make_world(hub)
    cases = [
        (bp("i-1", systolic=320), ["body", "data", "systolic"]),
        (bp("i-2", systolic=120, diastolic=130), ["body", "data", "diastolic"]),
        (bp("i-3", pulse=0), ["body", "data", "pulse"]),
        (weight("i-4", 1500, unit="lb"), ["body", "data", "weight"]),
        (glucose("i-5", 80, unit="mmol/L"), ["body", "data", "glucose"]),  # 1441 mg/dL: a unit mix-up
        (weight("i-6", 80, at=datetime.now(UTC) + timedelta(hours=3)), ["body", "measured_at"]),
    ]
    with api_client(hub) as client:
        for record, loc in cases:
            resp = world.post(client, record)
            assert resp.status_code == 422, resp.text
            assert [e["loc"] for e in resp.json()["errors"]] == [loc]
    items = quarantined(hub)
    assert len(items) == len(cases)
    assert {q.reason for q in items} == {QuarantineReason.implausible}
    assert [q.gateway_reading_id for q in items] == [f"i-{i}" for i in range(1, 7)]
    assert stored(hub) == (0, 0, 0)


def test_oversized_body_is_413_before_parsing(hub: Hub) -> None:
    world = make_world(hub)
    body = b"{" + b" " * (hub.settings.webhook_max_body_bytes + 1) + b"}"
    with api_client(hub) as client:
        resp = client.post(URL, content=body, headers=signed_headers(world.gateway_id, world.secret, body))
    assert resp.status_code == 413
    assert quarantined(hub) == []


def test_a_failure_mid_ingest_leaves_no_reading_no_outbox_and_no_audit(hub: Hub) -> None:
    world = make_world(hub)
    patient = add_patient(hub, world)
    with api_client(hub) as client:
        assert assign(client, world, "DEV-NEW", patient).status_code == 200
        audits_before = count(hub, AuditEntry)
        with inserts_fail(hub.settings.effective_database_url, "outbox"):
            resp = world.post(client, bp("mc-fail", device="DEV-NEVER-SEEN"))
        assert resp.status_code == 500
        assert resp.json() == {"error": "internal_error", "detail": "the reading was not stored; retry the delivery"}
        assert stored(hub) == (0, 0, 0)
        assert count(hub, AuditEntry) == audits_before
        assert count(hub, Device, Device.serial == "DEV-NEVER-SEEN") == 0
        # The gateway retries, as it does on any 5xx, and this time everything commits.
        retry = world.post(client, bp("mc-fail", device="DEV-NEVER-SEEN"))
        assert retry.status_code == 202
    assert stored(hub) == (1, 2, 2)


def test_units_are_converted_and_the_originals_kept_end_to_end(hub: Hub) -> None:
    world = make_world(hub)
    patient = add_patient(hub, world)
    with api_client(hub) as client:
        for device in ("SCALE-1", "GLU-1"):
            assert assign(client, world, device, patient).status_code == 200
        assert world.post(client, weight("w-1", 182.4, unit="lb")).status_code == 202
        assert world.post(client, glucose("g-1", 5.6, unit="mmol/L", meal="before_meal")).status_code == 202
        readings = client.get("/api/v1/readings/", params={"patient": patient}, headers=world.clinician).json()
    by_type = {r["type"]: r for r in readings}
    w = by_type["weight"]["measurements"][0]
    assert (w["value"], w["unit"], w["original_value"], w["original_unit"]) == (82.74, "kg", 182.4, "[lb_av]")
    g = by_type["glucose"]["measurements"][0]
    assert (g["value"], g["unit"], g["original_value"], g["original_unit"]) == (100.9, "mg/dL", 5.6, "mmol/L")
    assert by_type["glucose"]["meal_context"] == "before_meal"
    with hub.sessions() as session:
        resources = {e.resource["code"]["coding"][0]["code"]: e.resource for e in session.scalars(select(OutboxEntry))}
    assert resources["29463-7"]["valueQuantity"]["code"] == "kg"
    assert resources["2339-0"]["valueQuantity"]["code"] == "mg/dL"


def test_readings_keep_the_device_offset(hub: Hub) -> None:
    world = make_world(hub)
    at = recent(30)
    with api_client(hub) as client:
        assert world.post(client, bp("off-1", at=at)).status_code == 202
        (reading,) = client.get("/api/v1/readings/", headers=world.clinician).json()
    assert datetime.fromisoformat(reading["measured_at"]) == at
    assert reading["measured_at"].endswith("-05:00")


def test_concurrent_redeliveries_store_one_reading(hub: Hub) -> None:
    world = make_world(hub)
    record = bp("race-1", device="RACE-DEV")
    with api_client(hub) as client:
        url = str(client.base_url)

        def deliver(_: int) -> int:
            with httpx.Client(timeout=30) as c:
                return post_webhook(c, url, world.gateway_id, world.secret, record).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = sorted(pool.map(deliver, range(8)))
    assert codes == [200] * 7 + [202]
    assert stored(hub) == (1, 2, 2)
    assert count(hub, Device) == 1
