"""``/api/v1/me/push-tokens/``: a clinician registers, lists and removes their phones (SPEC §8)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from tests.notify.support import fcm_token, make_clinician, make_org
from tests.support import api_client, token_for
from vitalbridge.audit.models import AuditEntry
from vitalbridge.notify.models import PushDevice
from vitalbridge.notify.registry import TOKEN_PURPOSE
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Role

URL = "/api/v1/me/push-tokens/"


def test_register_list_refresh_and_remove(hub: Hub) -> None:
    org, _ = make_org(hub)
    nurse = make_clinician(hub, org, "nurse@tokens.example")
    token = fcm_token()
    with api_client(hub) as client:
        made = client.post(URL, json={"token": token, "platform": "ios"}, headers=nurse.headers)
        assert made.status_code == 201, made.text
        device = made.json()
        assert set(device) == {"id", "platform", "status", "created_at", "last_seen_at", "pruned_at", "prune_reason"}
        assert (device["platform"], device["status"]) == ("ios", "active")
        again = client.post(URL, json={"token": token, "platform": "ios"}, headers=nurse.headers)
        assert again.status_code == 200
        assert again.json()["id"] == device["id"]
        seen = datetime.fromisoformat(again.json()["last_seen_at"])
        assert seen >= datetime.fromisoformat(device["last_seen_at"])
        listed = client.get(URL, headers=nurse.headers)
        assert [d["id"] for d in listed.json()] == [device["id"]]
        assert token not in listed.text
        assert client.delete(f"{URL}{device['id']}", headers=nurse.headers).status_code == 204
        assert client.get(URL, headers=nurse.headers).json() == []
        assert client.delete(f"{URL}{device['id']}", headers=nurse.headers).status_code == 404
    with hub.sessions() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action.like("push_device.%")).order_by(AuditEntry.seq)
        ).all()
        rows = session.scalars(select(PushDevice)).all()
    assert [e.action for e in entries] == ["push_device.registered", "push_device.removed"]
    assert all(token not in str(e.detail) for e in entries)
    assert entries[0].actor == f"user:{nurse.user_id}"
    assert rows == []


def test_the_token_is_stored_sealed_and_hashed(hub: Hub) -> None:
    org, _ = make_org(hub)
    nurse = make_clinician(hub, org, "nurse@tokens.example")
    token = fcm_token()
    with api_client(hub) as client:
        assert client.post(URL, json={"token": token, "platform": "android"}, headers=nurse.headers).status_code == 201
    with hub.sessions() as session:
        row = session.scalars(select(PushDevice)).one()
    assert token.encode() not in row.token_sealed
    assert token not in row.token_hash
    assert hub.sealer.open_text(row.token_sealed, TOKEN_PURPOSE) == token


def test_a_token_without_a_user_cannot_have_push_tokens(hub: Hub) -> None:
    org, _ = make_org(hub)
    clinician_without_user = token_for(hub, org, Role.clinician)
    integration = make_clinician(hub, org, "int@tokens.example", role=Role.integration)
    with api_client(hub) as client:
        resp = client.post(
            URL,
            json={"token": fcm_token(), "platform": "ios"},
            headers={"Authorization": f"Bearer {clinician_without_user}"},
        )
        assert resp.status_code == 403
        assert "not linked to a user" in resp.json()["detail"]
        assert client.get(URL, headers={"Authorization": f"Bearer {clinician_without_user}"}).status_code == 403
        # An integration token is refused by role, user or not.
        assert (
            client.post(URL, json={"token": fcm_token(), "platform": "ios"}, headers=integration.headers).status_code
            == 403
        )


def test_malformed_registrations_are_refused_field_by_field(hub: Hub) -> None:
    org, _ = make_org(hub)
    nurse = make_clinician(hub, org, "nurse@tokens.example")
    with api_client(hub) as client:
        resp = client.post(URL, json={"token": "short", "platform": "blackberry"}, headers=nurse.headers)
        assert resp.status_code == 422
        assert {tuple(e["loc"]) for e in resp.json()["detail"]} == {("body", "token"), ("body", "platform")}
        resp = client.post(URL, json={"token": fcm_token(), "platform": "ios", "name": "x"}, headers=nurse.headers)
        assert resp.status_code == 422


def test_a_phone_handed_to_a_colleague_moves_with_its_token(hub: Hub) -> None:
    org, _ = make_org(hub)
    first = make_clinician(hub, org, "first@tokens.example")
    second = make_clinician(hub, org, "second@tokens.example")
    token = fcm_token()
    with api_client(hub) as client:
        mine = client.post(URL, json={"token": token, "platform": "android"}, headers=first.headers).json()
        # Someone else's device cannot be removed by id: it looks absent.
        assert client.delete(f"{URL}{mine['id']}", headers=second.headers).status_code == 404
        theirs = client.post(URL, json={"token": token, "platform": "android"}, headers=second.headers)
        assert theirs.status_code == 201
        assert client.get(URL, headers=first.headers).json() == []
        assert [d["id"] for d in client.get(URL, headers=second.headers).json()] == [theirs.json()["id"]]


def test_another_organizations_clinician_cannot_see_or_remove_a_phone(hub: Hub) -> None:
    org_a, _ = make_org(hub, "Org A")
    org_b, _ = make_org(hub, "Org B")
    alice = make_clinician(hub, org_a, "alice@a.example")
    bob = make_clinician(hub, org_b, "bob@b.example")
    with api_client(hub) as client:
        mine = client.post(URL, json={"token": fcm_token(), "platform": "ios"}, headers=alice.headers).json()
        assert client.get(URL, headers=bob.headers).json() == []
        resp = client.delete(f"{URL}{mine['id']}", headers=bob.headers)
        assert resp.status_code == 404
        assert resp.json()["detail"] == "no such push token of yours"
        assert [d["id"] for d in client.get(URL, headers=alice.headers).json()] == [mine["id"]]
