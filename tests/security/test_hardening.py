"""Body size limit, inbound rate limits, CORS and security headers, on the live hub."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import api_client, make_tenant
from vitalbridge.runtime import Hub
from vitalbridge.settings import Settings


def test_oversized_bodies_get_413(hub: Hub) -> None:
    hub.settings = hub.settings.model_copy(update={"max_body_bytes": 2048})
    tenant = make_tenant(hub, "Org A")
    big = b'{"practice_code": "' + b"A" * 4096 + b'"}'
    with api_client(hub) as client:
        resp = client.post(
            "/api/v1/practices/", content=big, headers={**tenant.headers, "Content-Type": "application/json"}
        )
        assert resp.status_code == 413
        assert "2048 bytes" in resp.json()["detail"]

        def chunks() -> Iterator[bytes]:
            for _ in range(8):
                yield b" " * 512

        chunked = client.post(
            "/api/v1/practices/", content=chunks(), headers={**tenant.headers, "Content-Type": "application/json"}
        )
        assert chunked.status_code == 413
        # A small chunked body still reaches the route (and fails its validation, not the limit).
        small = client.post(
            "/api/v1/practices/", content=iter([b"{}"]), headers={**tenant.headers, "Content-Type": "application/json"}
        )
        assert small.status_code == 422


def test_inbound_rate_limit_per_prefix(hub: Hub) -> None:
    hub.settings = hub.settings.model_copy(update={"inbound_rate_limits": {"/api/v1/users/": 3}})
    tenant = make_tenant(hub, "Org A")
    with api_client(hub) as client:
        codes = [client.get("/api/v1/users/", headers=tenant.headers).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200]
        assert codes[3:] == [429, 429]
        limited = client.get("/api/v1/users/", headers=tenant.headers)
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["error"] == "rate_limited"
        # Other prefixes are not limited by that rule.
        assert client.get("/api/v1/practices/", headers=tenant.headers).status_code == 200


def test_security_headers_and_no_cors_by_default(hub: Hub) -> None:
    tenant = make_tenant(hub, "Org A")
    with api_client(hub) as client:
        api = client.get("/api/v1/practices/", headers={**tenant.headers, "Origin": "https://evil.example"})
        assert api.headers["X-Content-Type-Options"] == "nosniff"
        assert api.headers["X-Frame-Options"] == "DENY"
        assert api.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in api.headers["Content-Security-Policy"]
        assert api.headers["Cache-Control"] == "no-store"
        assert len(api.headers["X-Request-ID"]) >= 8
        assert "access-control-allow-origin" not in api.headers
        preflight = client.options(
            "/api/v1/practices/",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in preflight.headers
        health = client.get("/healthz")
        assert health.headers["X-Frame-Options"] == "DENY"
        assert "Cache-Control" not in health.headers
        # A UUID/hex request id is kept; anything else (it could spell a name) is replaced.
        rid = "5f0c6a4e-2b1d-4c8e-9a7f-0d3b2e1c4a5b"
        assert client.get("/healthz", headers={"X-Request-ID": rid}).headers["X-Request-ID"] == rid
        for unsafe in ("Jane-Doe-1931-07-14", "x\tJane Doe"):
            assert client.get("/healthz", headers={"X-Request-ID": unsafe}).headers["X-Request-ID"] != unsafe


def test_cors_when_origins_are_configured(hub: Hub) -> None:
    hub.settings = hub.settings.model_copy(update={"cors_origins": ["https://dash.example"]})
    with api_client(hub) as client:
        ok = client.options(
            "/api/v1/practices/",
            headers={"Origin": "https://dash.example", "Access-Control-Request-Method": "GET"},
        )
        assert ok.headers["access-control-allow-origin"] == "https://dash.example"
        other = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_cors_origins_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VB_CORS_ORIGINS", "https://a.example, https://b.example/")
    monkeypatch.setenv("VB_INBOUND_RATE_LIMITS", '{"/api/v1/webhooks/": 5}')
    s = Settings()
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.inbound_rate_limits == {"/api/v1/webhooks/": 5}
