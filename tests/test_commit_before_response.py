"""A 2xx from the hub API means the change is committed: the next request sees it."""

from __future__ import annotations

from tests.support import api_client, make_tenant
from vitalbridge.runtime import Hub


def test_revocation_is_committed_before_the_answer(hub: Hub) -> None:
    admin = make_tenant(hub, "Org A")
    with api_client(hub) as client:
        for _ in range(20):
            made = client.post("/api/v1/tokens/", json={"role": "clinician"}, headers=admin.headers).json()
            headers = {"Authorization": f"Bearer {made['token']}"}
            assert client.delete(f"/api/v1/tokens/{made['id']}", headers=admin.headers).status_code == 204
            # Straight after the 204: the revocation must already hold.
            assert client.get("/api/v1/practices/", headers=headers).status_code == 401
