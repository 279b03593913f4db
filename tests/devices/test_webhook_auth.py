"""Webhook authentication (SPEC §5): every refusal is a 401 that stores nothing but an audit entry."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from tests.readings_support import ADMIN, bp, count, make_world
from tests.support import api_client
from vitalbridge.audit.models import AuditEntry
from vitalbridge.db.base import utcnow
from vitalbridge.devices import gateway_service
from vitalbridge.devices.models import Device, QuarantinedPayload, Reading
from vitalbridge.devices.signing import sign
from vitalbridge.devices.simulator import encode, signed_headers
from vitalbridge.errors import Conflict
from vitalbridge.runtime import Hub

URL = "/api/v1/webhooks/mioconnect/"


def refusal_reasons(hub: Hub) -> list[str]:
    with hub.sessions() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "webhook.refused").order_by(AuditEntry.seq)
        )
        return [r.detail["reason"] for r in rows]


def test_every_refusal_is_401_and_audited(hub: Hub) -> None:
    world = make_world(hub)
    body = encode(bp("r-1"))
    good = signed_headers(world.gateway_id, world.secret, body)
    now = int(time.time())
    cases: list[tuple[str, dict[str, str], str]] = []
    for header in ("X-Gateway-Id", "X-Timestamp", "X-Signature"):
        cases.append(("missing_headers", {k: v for k, v in good.items() if k != header}, "missing"))
    cases += [
        ("unknown_gateway", {**good, "X-Gateway-Id": "00000000-0000-4000-8000-000000000000"}, "does not verify"),
        ("bad_signature", {**good, "X-Signature": "0" * 64}, "does not verify"),
        ("bad_signature", {**good, "X-Signature": "not hex at all"}, "does not verify"),
        ("bad_signature", signed_headers(world.gateway_id, "vbgw_some-other-secret", body), "does not verify"),
        # Signature over the body but with another timestamp than the one sent: the MAC binds it.
        ("bad_signature", {**good, "X-Timestamp": str(now - 1)}, "does not verify"),
        ("bad_timestamp", {**good, "X-Timestamp": "yesterday"}, "Unix time"),
        ("stale_timestamp", signed_headers(world.gateway_id, world.secret, body, now - 400), "replay"),
        ("future_timestamp", signed_headers(world.gateway_id, world.secret, body, now + 400), "replay"),
    ]
    with api_client(hub) as client:
        for reason, headers, text in cases:
            resp = client.post(URL, content=body, headers=headers)
            assert resp.status_code == 401, (reason, resp.text)
            assert text in resp.json()["detail"], (reason, resp.text)
            # Same answer for an unknown gateway and a bad signature: gateway ids cannot be probed.
        tampered = client.post(URL, content=body.replace(b"138", b"139"), headers=good)
        assert tampered.status_code == 401
        # The body is signed, a well-signed body from 4 minutes ago is fine (skew < 5 min).
        ok = client.post(URL, content=body, headers=signed_headers(world.gateway_id, world.secret, body, now - 240))
        assert ok.status_code == 202, ok.text
    assert refusal_reasons(hub) == [c[0] for c in cases] + ["bad_signature"]
    assert count(hub, Reading) == 1
    assert count(hub, Device) == 1
    assert count(hub, QuarantinedPayload) == 0  # unauthenticated bodies are never kept
    with hub.sessions() as session:
        unknown = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "webhook.refused", AuditEntry.organization_id.is_(None))
        ).all()
        # The four without a (known) gateway carry no organization; the others name the gateway's.
        assert len(unknown) == 4
        assert all(r.actor == "gateway:unknown" and r.status_code == 401 for r in unknown)


def test_a_gateway_of_another_kind_or_an_unknown_kind_is_refused(hub: Hub) -> None:
    world = make_world(hub)
    body = encode(bp("r-1"))
    with api_client(hub) as client:
        resp = client.post(
            "/api/v1/webhooks/tenovi/", content=body, headers=signed_headers(world.gateway_id, world.secret, body)
        )
        assert resp.status_code == 404


def test_rotation_accepts_old_and_new_until_finished(hub: Hub) -> None:
    world = make_world(hub)
    old = world.secret
    with hub.sessions() as session, session.begin():
        new = gateway_service.rotate_secret(session, hub.sealer, world.gateway_id, actor=ADMIN, now=utcnow())
    assert new != old
    with api_client(hub) as client:
        assert world.post(client, bp("r-old"), secret=old).status_code == 202
        assert world.post(client, bp("r-new"), secret=new).status_code == 202
        with hub.sessions() as session:
            gw = gateway_service.get_gateway(session, world.gateway_id)
            assert gw.previous_secret_last_used_at is not None  # the operator can see the old one is in use
            assert old.encode() not in gw.secret_sealed
            assert old.encode() not in (gw.previous_secret_sealed or b"")
        with hub.sessions() as session, session.begin():
            gateway_service.finish_rotation(session, world.gateway_id, actor=ADMIN)
        assert world.post(client, bp("r-old-2"), secret=old).status_code == 401
        assert world.post(client, bp("r-new-2"), secret=new).status_code == 202
    assert refusal_reasons(hub) == ["bad_signature"]


def test_rotation_twice_needs_finishing_first(hub: Hub) -> None:
    world = make_world(hub)
    with hub.sessions() as session, session.begin():
        gateway_service.rotate_secret(session, hub.sealer, world.gateway_id, actor=ADMIN, now=utcnow())
    with hub.sessions() as session, pytest.raises(Conflict, match="already in progress"):
        gateway_service.rotate_secret(session, hub.sealer, world.gateway_id, actor=ADMIN, now=utcnow())
    with hub.sessions() as session, session.begin():
        gateway_service.finish_rotation(session, world.gateway_id, actor=ADMIN)
    with hub.sessions() as session, pytest.raises(Conflict, match="no rotation"):
        gateway_service.finish_rotation(session, world.gateway_id, actor=ADMIN)


def test_signature_helper_matches_the_documented_recipe() -> None:
    # docs/gateways/mioconnect.md: hex(HMAC-SHA256(secret, timestamp + "." + body)).
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", "1700000000", body) == expected
