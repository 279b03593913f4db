"""A push token another organization holds cannot be taken over (issue 10 item 3).

Before: registering a token that a clinician of organization B held deleted B's row, so B's
alerts stopped reaching B's phone and the token answered to the registrant. Now the other
organization's binding is left untouched (409), and pushes are checked end to end against the
fake FCM server over loopback.
"""

from __future__ import annotations

from sqlalchemy import select

from tests.notify.support import Fcm, fcm_token, make_clinician, make_org, make_patient, open_alert, received
from tests.support import api_client
from vitalbridge.audit.models import AuditEntry
from vitalbridge.db.base import utcnow
from vitalbridge.notify.background import run_once
from vitalbridge.notify.models import PushDevice
from vitalbridge.runtime import Hub

URL = "/api/v1/me/push-tokens/"


def test_another_organization_cannot_take_over_a_token_and_pushes_keep_their_owner(push_hub: Hub, fcm: Fcm) -> None:
    org_a, practice_a = make_org(push_hub, "Org A")
    org_b, practice_b = make_org(push_hub, "Org B")
    alice = make_clinician(push_hub, org_a, "alice@a.example")
    bob = make_clinician(push_hub, org_b, "bob@b.example")
    bobs_phone, alices_phone = fcm_token("bob"), fcm_token("alice")
    with api_client(push_hub) as client:
        mine = client.post(URL, json={"token": bobs_phone, "platform": "android"}, headers=bob.headers)
        assert mine.status_code == 201
        own = client.post(URL, json={"token": alices_phone, "platform": "ios"}, headers=alice.headers)
        assert own.status_code == 201
        hijack = client.post(URL, json={"token": bobs_phone, "platform": "android"}, headers=alice.headers)
        assert hijack.status_code == 409, hijack.text
        assert bobs_phone not in hijack.text
        assert bob.user_id not in hijack.text
        assert org_b not in hijack.text
        # B's binding is still B's; A's list did not gain it.
        assert [d["id"] for d in client.get(URL, headers=bob.headers).json()] == [mine.json()["id"]]
        assert len(client.get(URL, headers=alice.headers).json()) == 1
    with push_hub.sessions() as session:
        removed = session.scalars(select(AuditEntry).where(AuditEntry.action == "push_device.removed")).all()
        held = session.scalars(select(PushDevice).where(PushDevice.organization_id == org_b)).one()
    assert removed == []
    assert held.user_id == bob.user_id

    now = utcnow()
    b_alert = open_alert(
        push_hub, org_b, make_patient(push_hub, org_b, practice_b, provider_user_id=bob.user_id), at=now
    )
    a_alert = open_alert(
        push_hub, org_a, make_patient(push_hub, org_a, practice_a, provider_user_id=alice.user_id), at=now
    )
    run_once(push_hub, now=now)
    by_token = {m["token"]: m["data"]["alert_id"] for m in received(fcm)}
    assert by_token == {bobs_phone: b_alert, alices_phone: a_alert}


def test_after_the_holder_signs_out_the_token_registers_elsewhere(push_hub: Hub) -> None:
    org_a, _ = make_org(push_hub, "Org A")
    org_b, _ = make_org(push_hub, "Org B")
    alice = make_clinician(push_hub, org_a, "alice@a.example")
    bob = make_clinician(push_hub, org_b, "bob@b.example")
    phone = fcm_token()
    with api_client(push_hub) as client:
        mine = client.post(URL, json={"token": phone, "platform": "android"}, headers=bob.headers).json()
        assert client.post(URL, json={"token": phone, "platform": "android"}, headers=alice.headers).status_code == 409
        # Sign-out on the phone removes B's binding; the phone is then free to register in A.
        assert client.delete(f"{URL}{mine['id']}", headers=bob.headers).status_code == 204
        assert client.post(URL, json={"token": phone, "platform": "android"}, headers=alice.headers).status_code == 201
        assert client.get(URL, headers=bob.headers).json() == []
