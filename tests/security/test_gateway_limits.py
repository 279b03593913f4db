"""Inbound limits on gateway webhooks (issue 20): per authenticated gateway, so a vendor pushing
many clinics' readings from one address is not capped by the per-address limit; traffic that
does not authenticate as a gateway stays limited per address, and cannot drain a gateway's bucket."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from tests.readings_support import World, bp, make_world
from tests.support import api_client
from vitalbridge.devices.models import Reading
from vitalbridge.devices.simulator import post_webhook
from vitalbridge.runtime import Hub


def _limits(hub: Hub, *, per_gateway: int, per_address: int) -> None:
    hub.settings = hub.settings.model_copy(
        update={
            "gateway_rate_limit_per_minute": per_gateway,
            "inbound_rate_limits": {"/api/v1/webhooks/": per_address},
        }
    )


def _readings(hub: Hub, world: World) -> int:
    with hub.sessions() as session:
        return int(
            session.scalar(select(func.count()).select_from(Reading).where(Reading.organization_id == world.org_id))
            or 0
        )


def _post_many(client: httpx.Client, world: World, n: int, tag: str) -> list[int]:
    return [world.post(client, bp(f"{tag}-{i}")).status_code for i in range(n)]


def test_each_gateway_has_its_own_limit_from_one_address(hub: Hub) -> None:
    # The per-address limit (2/min) is below what either gateway sends: authenticated webhooks
    # are limited per gateway (3/min), not per address.
    _limits(hub, per_gateway=3, per_address=2)
    a = make_world(hub, "Org A")
    b = make_world(hub, "Org B")
    with api_client(hub) as client:  # both gateways call from the same loopback address
        assert _post_many(client, a, 4, "a") == [202, 202, 202, 429]
        limited = a.post(client, bp("a-late"))
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        # Org A's gateway at its limit does not throttle Org B's gateway on the same address.
        assert _post_many(client, b, 3, "b") == [202, 202, 202]
        assert b.post(client, bp("b-over")).status_code == 429
    # A refused reading is not stored: the gateway retries it later.
    assert _readings(hub, a) == 3
    assert _readings(hub, b) == 3


def test_unauthenticated_webhooks_are_limited_per_address(hub: Hub) -> None:
    _limits(hub, per_gateway=100, per_address=2)
    a = make_world(hub, "Org A")
    b = make_world(hub, "Org B")
    with api_client(hub) as client:
        url = str(client.base_url)
        # Someone names Org B's gateway without its secret: refused, and counted per address.
        spoofed = [post_webhook(client, url, b.gateway_id, "wrong", bp(f"x-{i}")).status_code for i in range(3)]
        assert spoofed == [401, 401, 429]
        # Requests naming no gateway share that address's bucket (already empty).
        bare = client.post("/api/v1/webhooks/mioconnect/", content=b"{}", headers={"Content-Type": "application/json"})
        assert bare.status_code == 429
        # An unknown gateway kind naming a gateway is not authenticated either.
        odd = client.post("/api/v1/webhooks/nope/", content=b"{}", headers={"X-Gateway-Id": b.gateway_id})
        assert odd.status_code == 429
        # The real gateways on that address are untouched: their buckets are their own, and the
        # failed attempts in B's name took nothing from B's.
        assert _post_many(client, b, 3, "b") == [202, 202, 202]
        assert a.post(client, bp("a-0")).status_code == 202
    assert _readings(hub, b) == 3
