"""How the tenant isolation test seeds organization A and builds organization B's requests.

Every ``/api/v1`` operation in the OpenAPI document must be covered here, or the test fails and
says what to add:

- a path parameter name → the kind of A's object whose id goes into it (``PATH_PARAM_KINDS``);
- a query parameter that names one of A's objects → its kind (``QUERY_PARAM_KINDS``);
- an operation with a request body → a body seeder (``BODY_SEEDERS``) that, where the body can
  reference other objects, references A's (B must then be refused);
- an operation that cannot be judged by these rules (e.g. an HMAC-signed webhook) → a custom
  probe in ``CUSTOM_PROBES`` that makes its own assertions.

A new kind of object is created in ``seed_organization_a``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from vitalbridge.hl7v2.models import Direction, Hl7Message, Hl7MessageStatus
from vitalbridge.patients.models import BulkSyncJob, BulkSyncStatus, Patient
from vitalbridge.runtime import Hub


@dataclass
class World:
    """A's objects (by kind) and the strings that must never appear in B's responses."""

    a_headers: dict[str, str]
    b_headers: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)
    markers: list[str] = field(default_factory=list)

    def a_strings(self) -> list[str]:
        return [*self.ids.values(), *self.markers]


A_CORRELATION_ID = "0a0a0a0a-1111-4222-8333-a0a0a0a0a0a0"

PATH_PARAM_KINDS: dict[str, str] = {
    "practice_id": "practice",
    "user_id": "user",
    "token_id": "token",
    "patient_id": "patient",
    "message_id": "hl7_message",
    "sync_id": "bulk_sync",
    "device": "device",
    "reading_id": "reading",
    "item_id": "quarantine",
    "alert_id": "alert",
    "program_id": "program",
    "delivery_id": "delivery",
    "push_token_id": "push_device",
    "episode_id": "billing_episode",
    "entry_id": "billing_time_entry",
    "month": "billing_month",
}

QUERY_PARAM_KINDS: dict[str, str] = {
    "practice": "practice",
    "practice_id": "practice",
    "patient_id": "patient",
    "user_id": "user",
    "correlation_id": "correlation",
}


def _new_practice(code: str) -> dict[str, Any]:
    return {
        "practice_code": code,
        "name": "Isolation probe practice",
        "fhir_base_url": f"https://fhir.example.org/fhir/r4/{code}",
        "token_url": "https://oauth.example.org/oauth/oauth2/token",
        "client_id": "iso-client",
    }


BodySeeder = Callable[[World], dict[str, Any]]

BODY_SEEDERS: dict[tuple[str, str], BodySeeder] = {
    # Creations in B's own organization: allowed, and must not touch or reveal A.
    ("POST", "/api/v1/practices/"): lambda w: _new_practice("ISOBPRACTICE"),
    ("POST", "/api/v1/users/"): lambda w: {"email": "bob-iso@b.example", "role": "clinician"},
    # A token for A's user, asked for by B: must be refused.
    ("POST", "/api/v1/tokens/"): lambda w: {"role": "admin", "user_id": w.ids["user"]},
    # Importing into A's practice, asked by B: must be refused.
    ("POST", "/api/v1/ecw/patients/import/"): lambda w: {"practice": w.ids["practice"], "patient_ids": ["iso1"]},
    ("POST", "/api/v1/providers/"): lambda w: {"name": "Dr. Iso B"},
    ("POST", "/api/v1/programs/"): lambda w: {"code": "isob", "name": "Isolation B program"},
    # A sync of A's practice, asked by B: must be refused.
    ("POST", "/api/v1/ecw/patients/sync/"): lambda w: {"practice": w.ids["practice"]},
    # B puts its device on A's patient: must be refused.
    ("POST", "/api/v1/devices/"): lambda w: {"device_id": "ISOBDEV1", "patient_id": w.ids["patient"]},
    ("POST", "/api/v1/quarantine/{item_id}/dismiss"): lambda w: {"note": "b"},
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): lambda w: {"note": "b"},
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): lambda w: {"note": "b"},
    ("POST", "/api/v1/alerts/{alert_id}/assign"): lambda w: {"user_id": None},
    ("PUT", "/api/v1/patients/{patient_id}/thresholds"): lambda w: {},
    ("PUT", "/api/v1/programs/{program_id}/rules"): lambda w: {},
    # B renames A's practice: must look absent (404).
    ("PATCH", "/api/v1/practices/{practice_id}"): lambda w: {"name": "Renamed by B"},
    # EHR connection tests and disconnect, aimed at A's practice: must be refused before any EHR call.
    ("POST", "/api/v1/ecw/test/jwt/"): lambda w: {"practice": w.ids["practice"]},
    ("POST", "/api/v1/ecw/test/connection/"): lambda w: {"practice": w.ids["practice"]},
    ("POST", "/api/v1/ecw/auth/revoke/"): lambda w: {"practice": w.ids["practice"]},
    ("POST", "/api/v1/ecw/auth/refresh/"): lambda w: {"practice": w.ids["practice"]},
    # B's tokens are not bound to a user: /me routes refuse them (403) before anything else.
    ("POST", "/api/v1/me/push-tokens/"): lambda w: {"token": "iso-b-" + "b" * 40, "platform": "ios"},
    ("PUT", "/api/v1/me/quiet-hours"): lambda w: {"time_zone": "UTC", "starts": "22:00", "ends": "06:00"},
    # B's own organization default: allowed, must not touch or reveal A's.
    ("PUT", "/api/v1/notifications/quiet-hours"): lambda w: {"time_zone": "UTC", "starts": "21:00", "ends": "05:00"},
    # A's user on A's program's on-call list, asked for by B: must be refused.
    ("PUT", "/api/v1/programs/{program_id}/alerting"): lambda w: {"on_call_user_ids": [w.ids["user"]]},
    # Billing: B enrolls A's patient or logs time on A's patient: must be refused.
    ("POST", "/api/v1/billing/episodes/"): lambda w: _billing_episode(w, "2027-01-01"),
    ("POST", "/api/v1/billing/episodes/{episode_id}/end"): lambda w: {"ended_on": "2027-12-31"},
    ("POST", "/api/v1/billing/episodes/{episode_id}/setup"): lambda w: {"on": "2026-10-02", "staff": "b"},
    ("POST", "/api/v1/billing/episodes/{episode_id}/billing-practitioner"): lambda w: {
        "practitioner_id": w.ids["billing_provider"]
    },
    ("POST", "/api/v1/billing/time-entries/"): lambda w: _billing_entry(w),
    ("POST", "/api/v1/billing/time-entries/{entry_id}/corrections"): lambda w: {"void": True, "note": "b"},
}


def _billing_episode(w: World, started_on: str) -> dict[str, Any]:
    return {
        "patient_id": w.ids["patient"],
        "program": "rtm",
        "time_zone": "America/Denver",
        "ordering_practitioner_id": w.ids["billing_provider"],
        "condition_code": "I10",
        "consent": {"at": "2026-09-30T14:00:00-06:00", "modality": "written", "recorded_by": "RN Iso"},
        "billing_practitioner_id": w.ids["billing_provider"],
        "started_on": started_on,
    }


def _billing_entry(w: World) -> dict[str, Any]:
    return {
        "patient_id": w.ids["patient"],
        "staff": "RN Iso",
        "credential": "clinical_staff",
        "started_at": "2026-10-05T10:00:00-06:00",
        "minutes": 7,
        "activity": "data_review",
    }


CustomProbe = Callable[[httpx.Client, World], None]


def _webhook_probe(client: httpx.Client, world: World) -> None:
    """Gateways authenticate by signature, not token: B's token buys nothing and reveals nothing."""
    resp = client.post("/api/v1/webhooks/mioconnect/", content=b"{}", headers=world.b_headers)
    assert resp.status_code == 401, resp.text
    assert not [s for s in world.a_strings() if s in resp.text]


CUSTOM_PROBES: dict[tuple[str, str], CustomProbe] = {("POST", "/api/v1/webhooks/{kind}/"): _webhook_probe}


def seed_organization_a(hub: Hub, client: httpx.Client, world: World) -> None:
    """One object of each kind in A, created the way users create them (API first)."""
    headers = {**world.a_headers, "X-Request-ID": A_CORRELATION_ID}
    resp = client.post("/api/v1/practices/", json=_new_practice("ISOAPRACTICE"), headers=headers)
    assert resp.status_code == 201, resp.text
    world.ids["practice"] = resp.json()["id"]
    world.markers.append("ISOAPRACTICE")
    resp = client.post(
        "/api/v1/users/", json={"email": "alice-iso@a.example", "role": "clinician"}, headers=world.a_headers
    )
    assert resp.status_code == 201, resp.text
    world.ids["user"] = resp.json()["id"]
    world.markers.append("alice-iso@a.example")
    resp = client.post("/api/v1/tokens/", json={"role": "clinician", "name": "iso-a-token"}, headers=world.a_headers)
    assert resp.status_code == 201, resp.text
    world.ids["token"] = resp.json()["id"]
    world.markers += [resp.json()["prefix"], "iso-a-token"]
    world.ids["correlation"] = A_CORRELATION_ID
    # No patient API on this branch yet: the registry row is written as an import would.
    with hub.sessions() as session, session.begin():
        org_id = session.scalar(_org_of_practice(world.ids["practice"]))
        assert org_id is not None
        patient = Patient(
            organization_id=org_id,
            practice_id=world.ids["practice"],
            ehr_id="iso-a-ehr-1",
            mrn="ISOAMRN1",
            given_name="Isoline",
            family_name="Aardvark",
        )
        session.add(patient)
        session.flush()
        world.ids["patient"] = patient.id
        message = Hl7Message(
            direction=Direction.inbound,
            organization_id=org_id,
            practice_id=world.ids["practice"],
            patient_id=patient.id,
            control_id="ISOACTRL1",
            message_type="ADT^A01",
            status=Hl7MessageStatus.accepted,
            raw=b"MSH|^~\\&|ISOA",
        )
        session.add(message)
        session.flush()
        world.ids["hl7_message"] = message.id
        sync = BulkSyncJob(
            organization_id=org_id,
            practice_id=world.ids["practice"],
            status=BulkSyncStatus.completed,
            polls=0,
            patients_created=0,
            patients_updated=0,
            lines_rejected=0,
            issues=[],
        )
        session.add(sync)
        session.flush()
        world.ids["bulk_sync"] = sync.id
    world.markers += ["ISOAMRN1", "Aardvark", "ISOACTRL1"]
    _seed_readings(hub, client, world, org_id)


def _seed_readings(hub: Hub, client: httpx.Client, world: World, org_id: str) -> None:
    """A's readings pipeline, fed the way a gateway feeds it: a cuff on A's patient, a reading
    that opens an alert, an implausible one held in quarantine; and a program."""
    from sqlalchemy import select

    from vitalbridge.audit import Actor
    from vitalbridge.delivery.models import OutboxEntry
    from vitalbridge.devices import gateway_service
    from vitalbridge.devices.gateways import GatewayKind
    from vitalbridge.devices.models import QuarantinedPayload, Reading
    from vitalbridge.devices.simulator import make_record, post_webhook
    from vitalbridge.triage.models import Alert

    with hub.sessions() as session, session.begin():
        gw, secret = gateway_service.create_gateway(
            session, hub.sealer, organization_id=org_id, kind=GatewayKind.mioconnect, actor=Actor.service("iso")
        )
        gateway_id = gw.id
    resp = client.post(
        "/api/v1/devices/", json={"device_id": "ISOADEV1", "patient_id": world.ids["patient"]}, headers=world.a_headers
    )
    assert resp.status_code == 200, resp.text
    world.ids["device"] = "ISOADEV1"
    at = datetime.now(UTC) - timedelta(minutes=2)
    for reading_id, systolic, expected in (("iso-a-r1", 185, 202), ("iso-a-r2", 999, 422)):
        record = make_record(
            reading_id, "ISOADEV1", "blood_pressure", at, {"systolic": systolic, "diastolic": 95, "unit": "mmHg"}
        )
        sent = post_webhook(client, str(client.base_url), gateway_id, secret, record)
        assert sent.status_code == expected, sent.text
    with hub.sessions() as session:
        reading = session.scalar(select(Reading.id).where(Reading.organization_id == org_id))
        item = session.scalar(select(QuarantinedPayload.id).where(QuarantinedPayload.organization_id == org_id))
        alert = session.scalar(select(Alert.id).where(Alert.organization_id == org_id))
        delivery = session.scalar(select(OutboxEntry.id).where(OutboxEntry.organization_id == org_id).limit(1))
    assert delivery is not None
    world.ids["delivery"] = delivery
    assert reading is not None
    assert item is not None
    assert alert is not None
    world.ids.update(reading=reading, quarantine=item, alert=alert)
    resp = client.post("/api/v1/programs/", json={"code": "isoaprog", "name": "Iso A program"}, headers=world.a_headers)
    assert resp.status_code == 201, resp.text
    world.ids["program"] = resp.json()["id"]
    world.markers += ["iso-a-r1", "isoaprog"]
    _seed_push(client, world)


A_PUSH_TOKEN = "iso-a-push-" + "a" * 60


def _seed_push(client: httpx.Client, world: World) -> None:
    """A's clinician has a phone registered; A has quiet hours and an on-call list."""
    resp = client.post(
        "/api/v1/tokens/", json={"role": "clinician", "user_id": world.ids["user"]}, headers=world.a_headers
    )
    assert resp.status_code == 201, resp.text
    alice = {"Authorization": f"Bearer {resp.json()['token']}"}
    resp = client.post("/api/v1/me/push-tokens/", json={"token": A_PUSH_TOKEN, "platform": "android"}, headers=alice)
    assert resp.status_code == 201, resp.text
    world.ids["push_device"] = resp.json()["id"]
    quiet = {"time_zone": "Pacific/Chatham", "starts": "23:15", "ends": "06:45"}
    assert client.put("/api/v1/me/quiet-hours", json=quiet, headers=alice).status_code == 200
    assert client.put("/api/v1/notifications/quiet-hours", json=quiet, headers=world.a_headers).status_code == 200
    resp = client.put(
        f"/api/v1/programs/{world.ids['program']}/alerting",
        json={"on_call_user_ids": [world.ids["user"]], "escalation_minutes": 7},
        headers=world.a_headers,
    )
    assert resp.status_code == 200, resp.text
    world.markers += [A_PUSH_TOKEN, "Pacific/Chatham"]
    _seed_billing(client, world)


def _seed_billing(client: httpx.Client, world: World) -> None:
    """A enrolls its patient, logs time and closes a month (SPEC §13)."""
    resp = client.post("/api/v1/providers/", json={"name": "Dr Isobel Billwright"}, headers=world.a_headers)
    assert resp.status_code == 201, resp.text
    world.ids["billing_provider"] = resp.json()["id"]
    resp = client.post("/api/v1/billing/episodes/", json=_billing_episode(world, "2026-10-01"), headers=world.a_headers)
    assert resp.status_code == 201, resp.text
    world.ids["billing_episode"] = resp.json()["id"]
    entry = {**_billing_entry(world), "staff": "RN Isoaudra", "note": "iso-a-note"}
    resp = client.post("/api/v1/billing/time-entries/", json=entry, headers=world.a_headers)
    assert resp.status_code == 201, resp.text
    world.ids["billing_time_entry"] = resp.json()["id"]
    world.ids["billing_month"] = "2026-10"
    resp = client.post(f"/api/v1/billing/reports/{world.ids['practice']}/2026-10/close", headers=world.a_headers)
    assert resp.status_code == 201, resp.text
    world.markers += ["Dr Isobel Billwright", "America/Denver", "RN Isoaudra", "iso-a-note"]


def _org_of_practice(practice_id: str) -> Any:
    from sqlalchemy import select

    from vitalbridge.tenancy.models import Practice

    return select(Practice.organization_id).where(Practice.id == practice_id)
