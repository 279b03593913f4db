"""Sandbox tests: every peer is a real server on loopback (ServerThread), no database needed.

``sandbox`` is the session's default sandbox, reset before each test (two practices, 120
patients, export jobs that finish at once); ``make_sandbox`` starts one with other settings.
``jwks_server`` is a tiny JWKS host whose keys a test can change, and which counts how often
the sandbox fetched them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.sandbox.support import OTHER_PRACTICE, PRACTICE, Sandbox
from vitalbridge.sandbox.app import create_sandbox_app
from vitalbridge.sandbox.config import SandboxConfig
from vitalbridge.sandbox.profile import Profile
from vitalbridge.servers import ServerThread

# The textbook profile: these tests pin each standard behaviour; test_profiles.py covers ecw.
BASE_CONFIG = SandboxConfig(
    profile=Profile.generic,
    practices=(PRACTICE, OTHER_PRACTICE),
    patients_per_practice=120,
    seed=7,
    rate_limit_per_minute=100_000,
    export_job_s=0.0,
)


class JwksHost:
    """Serves ``document`` at /jwks.json (or ``status`` instead) and counts requests."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.status = 200
        self.fetches = 0
        self.url = ""

    def app(self) -> Starlette:
        async def jwks(_request: Request) -> Response:
            self.fetches += 1
            if self.status != 200:
                return Response("unavailable", status_code=self.status)
            return JSONResponse(self.document)

        return Starlette(routes=[Route("/jwks.json", jwks)])


@pytest.fixture(scope="session")
def _jwks_host() -> Iterator[JwksHost]:
    host = JwksHost()
    with ServerThread(host.app()) as url:
        host.url = f"{url}/jwks.json"
        yield host


@pytest.fixture
def jwks_server(_jwks_host: JwksHost) -> JwksHost:
    _jwks_host.document = {"keys": []}
    _jwks_host.status = 200
    _jwks_host.fetches = 0
    return _jwks_host


SandboxFactory = Callable[..., Sandbox]


@pytest.fixture
def make_sandbox() -> Iterator[SandboxFactory]:
    with ExitStack() as stack:

        def start(**overrides: Any) -> Sandbox:
            config = replace(BASE_CONFIG, **overrides)
            url = stack.enter_context(ServerThread(create_sandbox_app(config)))
            http = stack.enter_context(httpx.Client(base_url=url, timeout=10))
            return Sandbox(url, http, config)

        yield start


@pytest.fixture(scope="session")
def _shared_sandbox() -> Iterator[Sandbox]:
    with ServerThread(create_sandbox_app(BASE_CONFIG)) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield Sandbox(url, http, BASE_CONFIG)


@pytest.fixture
def sandbox(_shared_sandbox: Sandbox) -> Sandbox:
    """The session's default sandbox, reset (clients included) so each test starts clean."""
    resp = _shared_sandbox.http.post("/_sandbox/reset", json={"clients": True})
    assert resp.status_code == 200
    return Sandbox(_shared_sandbox.url, _shared_sandbox.http, BASE_CONFIG)
