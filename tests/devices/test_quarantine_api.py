"""The quarantine is visible and reviewable (SPEC §5, DESIGN principle 5)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from tests.readings_support import add_patient, assign, bp, count, make_world
from tests.support import api_client
from vitalbridge.audit.models import AuditEntry
from vitalbridge.devices import receive
from vitalbridge.devices.models import Reading
from vitalbridge.devices.simulator import signed_headers
from vitalbridge.runtime import Hub

URL = "/api/v1/webhooks/mioconnect/"


def test_list_detail_dismiss_and_roles(hub: Hub) -> None:
    world = make_world(hub)
    binary = b"\x00\xffnot json"
    with api_client(hub) as client:
        assert world.post(client, bp("q-1", systolic=999)).status_code == 422
        assert (
            client.post(URL, content=binary, headers=signed_headers(world.gateway_id, world.secret, binary)).status_code
            == 422
        )
        listed = client.get("/api/v1/quarantine/", headers=world.integration).json()
        assert [(q["reason"], q["status"]) for q in listed] == [("malformed", "open"), ("implausible", "open")]
        implausible = listed[1]
        assert implausible["gateway_reading_id"] == "q-1"
        assert implausible["errors"][0]["loc"] == ["body", "data", "systolic"]

        detail = client.get(f"/api/v1/quarantine/{implausible['id']}", headers=world.integration).json()
        assert detail["raw_body_encoding"] == "utf-8"
        assert '"systolic":999' in detail["raw_body"]
        raw = client.get(f"/api/v1/quarantine/{listed[0]['id']}", headers=world.integration).json()
        assert raw["raw_body_encoding"] == "base64"
        assert base64.b64decode(raw["raw_body"]) == binary

        # Clinicians triage patients, integration staff review payloads.
        assert client.get("/api/v1/quarantine/", headers=world.clinician).status_code == 403
        assert client.get("/api/v1/quarantine/", headers=world.admin).status_code == 200

        dismissed = client.post(
            f"/api/v1/quarantine/{implausible['id']}/dismiss", json={"note": "cuff replaced"}, headers=world.integration
        )
        assert dismissed.status_code == 200
        assert dismissed.json()["status"] == "dismissed"
        assert dismissed.json()["reviewed_by"].startswith("token:")
        again = client.post(f"/api/v1/quarantine/{implausible['id']}/dismiss", json={}, headers=world.integration)
        assert again.status_code == 409
        assert [q["id"] for q in client.get("/api/v1/quarantine/", headers=world.integration).json()] == [
            listed[0]["id"]
        ]
        everything = client.get("/api/v1/quarantine/", params={"status": "dismissed"}, headers=world.integration).json()
        assert [q["id"] for q in everything] == [implausible["id"]]
    assert count(hub, AuditEntry, AuditEntry.action == "quarantine.dismissed") == 1


def test_reprocess_accepts_what_now_passes_and_keeps_what_still_fails(hub: Hub) -> None:
    world = make_world(hub)
    patient = add_patient(hub, world)
    with api_client(hub) as client:
        assert assign(client, world, "356938035643809", patient).status_code == 200
        assert world.post(client, bp("r-1", systolic=999)).status_code == 422
        (item,) = client.get("/api/v1/quarantine/", headers=world.integration).json()
        still = client.post(f"/api/v1/quarantine/{item['id']}/reprocess", headers=world.integration)
        assert still.status_code == 422
        assert still.json()["errors"][0]["loc"] == ["body", "data", "systolic"]
        assert count(hub, Reading) == 0

        # The gateway re-sends a corrected reading under the same id; the stored body is still refused.
        assert world.post(client, bp("r-1", systolic=140)).status_code == 202
        assert client.post(f"/api/v1/quarantine/{item['id']}/reprocess", headers=world.integration).status_code == 422

        # A reading refused only for a reason that no longer holds is accepted on reprocessing:
        # here a device clock 12 minutes fast, reprocessed once that time has passed.
        soon = bp("r-2", at=datetime.now(UTC) + timedelta(minutes=12))
        assert world.post(client, soon).status_code == 422
        item2 = next(
            q
            for q in client.get("/api/v1/quarantine/", headers=world.integration).json()
            if q["gateway_reading_id"] == "r-2"
        )
        later = datetime.now(UTC) + timedelta(minutes=15)
        reading_id = receive.reprocess(hub, world.org_id, item2["id"], actor="user:reviewer", now=later)
        detail = client.get(f"/api/v1/quarantine/{item2['id']}", headers=world.integration).json()
        assert detail["status"] == "reprocessed"
        assert detail["reading_id"] == reading_id
        assert (
            client.get(f"/api/v1/readings/{reading_id}", headers=world.clinician).json()["gateway_reading_id"] == "r-2"
        )
        assert client.post(f"/api/v1/quarantine/{item2['id']}/reprocess", headers=world.integration).status_code == 409
    assert (
        count(hub, AuditEntry, AuditEntry.action == "quarantine.reprocessed", AuditEntry.actor == "user:reviewer") == 1
    )
