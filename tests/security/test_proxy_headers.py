"""X-Forwarded-For is believed only from configured proxies (VB_TRUSTED_PROXIES).

Loopback addresses play the hosts: 127.0.0.2 is the reverse proxy; 127.0.0.1 is a caller that
reaches the hub directly and sends forwarded headers of its own choosing (a process on the hub's
machine, which uvicorn's own default would take for a proxy).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from tests.support import make_tenant
from tests.test_cli import VB, cli_env, run
from vitalbridge.app import create_app
from vitalbridge.runtime import Hub
from vitalbridge.servers import ServerThread
from vitalbridge.settings import Settings

PROXY, DIRECT = "127.0.0.2", "127.0.0.1"
GUESS = {"Authorization": "Bearer vb_guess"}


@contextmanager
def hub_from(hub: Hub, source: str) -> Iterator[httpx.Client]:
    """The live hub, and a client whose connections come from ``source``."""
    transport = httpx.HTTPTransport(local_address=source)
    with ServerThread(create_app(hub=hub)) as url, httpx.Client(base_url=url, transport=transport, timeout=30) as c:
        yield c


def forwarded(address: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {**(headers or {}), "X-Forwarded-For": address}


def test_spoofed_forwarded_for_does_not_dodge_the_auth_throttle(hub: Hub) -> None:
    hub.settings = hub.settings.model_copy(update={"auth_failures_per_minute": 3, "trusted_proxies": [PROXY]})
    tenant = make_tenant(hub, "Org A")
    with hub_from(hub, DIRECT) as direct:
        # Each guess claims to come from a different address; all are counted against the peer.
        for n in range(3):
            assert direct.get("/api/v1/practices/", headers=forwarded(f"198.51.100.{n}", GUESS)).status_code == 401
        throttled = direct.get("/api/v1/practices/", headers=forwarded("198.51.100.77", tenant.headers))
        assert throttled.status_code == 429


def test_a_trusted_proxy_names_the_client(hub: Hub) -> None:
    hub.settings = hub.settings.model_copy(update={"auth_failures_per_minute": 3, "trusted_proxies": [PROXY]})
    tenant = make_tenant(hub, "Org A")
    with hub_from(hub, PROXY) as proxy:
        for _ in range(3):
            assert proxy.get("/api/v1/practices/", headers=forwarded("203.0.113.7", GUESS)).status_code == 401
        assert proxy.get("/api/v1/practices/", headers=forwarded("203.0.113.7", tenant.headers)).status_code == 429
        # Another client behind the same proxy is not punished for the first one's guesses.
        assert proxy.get("/api/v1/practices/", headers=forwarded("203.0.113.8", tenant.headers)).status_code == 200
        # The proxy appends the address it saw; what the client put in front of it is not believed.
        spoofed = forwarded("198.51.100.1, 203.0.113.7", tenant.headers)
        assert proxy.get("/api/v1/practices/", headers=spoofed).status_code == 429


def test_spoofed_forwarded_for_does_not_dodge_the_inbound_rate_limit(hub: Hub) -> None:
    hub.settings = hub.settings.model_copy(update={"inbound_rate_limits": {"/api/v1/users/": 2}})
    tenant = make_tenant(hub, "Org A")
    with hub_from(hub, DIRECT) as direct:
        codes = [
            direct.get("/api/v1/users/", headers=forwarded(f"198.51.100.{n}", tenant.headers)).status_code
            for n in range(3)
        ]
        assert codes == [200, 200, 429]


def test_serve_believes_no_forwarded_header_by_default(db_url: str, tmp_path: Path) -> None:
    # `vitalbridge serve` as an operator runs it: the caller is on loopback, which uvicorn's own
    # default would take for a proxy.
    env = {**cli_env(db_url, tmp_path), "VB_AUTH_FAILURES_PER_MINUTE": "2"}
    run(["migrate"], env)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([*VB, "serve", "--port", str(port)], env=env)
    try:
        url = f"http://127.0.0.1:{port}/api/v1/practices/"
        deadline = time.monotonic() + 30
        while True:
            try:
                first = httpx.get(url, headers=forwarded("198.51.100.1", GUESS))
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "hub did not start"
                time.sleep(0.2)
        assert first.status_code == 401
        assert httpx.get(url, headers=forwarded("198.51.100.2", GUESS)).status_code == 401
        assert httpx.get(url, headers=forwarded("198.51.100.3", GUESS)).status_code == 429
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_trusted_proxies_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().trusted_proxies == []
    monkeypatch.setenv("VB_TRUSTED_PROXIES", "10.0.0.5, 192.168.10.0/24,::1")
    assert Settings().trusted_proxies == ["10.0.0.5", "192.168.10.0/24", "::1"]
    for bad in ("*", "proxy.internal", "10.0.0.0/99"):
        monkeypatch.setenv("VB_TRUSTED_PROXIES", bad)
        with pytest.raises(ValidationError, match="IP address or a CIDR network"):
            Settings()
