"""Health endpoints and the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from tests.support import api_client
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.settings import Settings


def test_healthz_and_readyz(hub: Hub) -> None:
    with api_client(hub) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["database"] == "ok"
        assert "/api/v1/practices/" in client.get("/openapi.json").json()["paths"]


def test_readyz_reports_unreachable_database(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql://nobody@127.0.0.1:1/none",
        data_dir=tmp_path,
        secret_key="k",  # type: ignore[arg-type]
    )
    hub = build_hub(settings)
    with api_client(hub) as client:
        resp = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    assert resp.status_code == 503
    assert resp.json()["status"] == "unavailable"
    hub.close()
