"""``make run``'s demo practice authenticates with private_key_jwt out of the box."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.sandbox.support import Sandbox
from vitalbridge.app import create_app
from vitalbridge.ehr.client import EhrClient
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.quickstart import register_demo_client, seed_demo_tenant
from vitalbridge.runtime import Hub
from vitalbridge.servers import ServerThread
from vitalbridge.smart import keys
from vitalbridge.tenancy.models import AuthMethod


@pytest.fixture
def served_hub(hub: Hub) -> Iterator[str]:
    server = ServerThread(create_app(hub=hub, background=False))
    hub.settings.public_url = server.url
    hub.settings.ecw_rate_limit = 10_000.0
    with server as url:
        yield url


def test_demo_practice_signs_with_the_hubs_own_key(hub: Hub, served_hub: str, default_sandbox: Sandbox) -> None:
    sandbox = default_sandbox
    assert sandbox.http.post("/_sandbox/reset", json={"clients": True}).status_code == 200
    practice, token = seed_demo_tenant(hub, sandbox.url)
    assert practice.auth_method is AuthMethod.private_key_jwt
    assert token.startswith("vb_")
    with hub.sessions() as session:
        # The demo organization's own key set; the hub-wide set stays empty.
        [key] = keys.list_keys(session, organization_id=practice.organization_id)
        assert keys.list_keys(session) == []
    asyncio.run(register_demo_client(hub, practice, sandbox.url))
    registered = {c["client_id"]: c for c in sandbox.http.get("/_sandbox/clients").json()["clients"]}
    demo = registered[practice.client_id]
    assert demo["jwks_url"] == f"{served_hub}/.well-known/jwks/{practice.organization_id}.json"
    assert demo["has_client_secret"] is True  # client_secret_basic stays possible
    assert demo["redirect_uris"] == [f"{served_hub}/api/v1/ecw/auth/callback/"]
    assert "offline_access" in demo["scopes"]

    resp = EhrClient(hub).get(PracticeConnection.of(practice), "metadata")
    assert resp.status_code == 200
    assert sandbox.stats()["token_requests_by_client"] == {practice.client_id: 1}
    # A second start reuses tenant, key and API token.
    again, token_again = seed_demo_tenant(hub, sandbox.url)
    assert (again.id, token_again) == (practice.id, token)
    with hub.sessions() as session:
        assert [k.kid for k in keys.list_keys(session, organization_id=practice.organization_id)] == [key.kid]
