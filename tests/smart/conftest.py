"""SMART tests: the hub and the sandbox EHR both on real loopback sockets.

``smart_env`` starts a sandbox (options per test through ``sandbox_options``), serves the hub
(so the sandbox can fetch the hub's JWKS), creates a tenant with one practice wired to the
sandbox, gives the hub a signing key and registers the hub as a client with the sandbox — the
same steps an integration engineer takes with eCW.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from tests.leaks import LeakHarness
from tests.sandbox.support import PRACTICE, Sandbox
from tests.support import Tenant, make_tenant
from vitalbridge.app import create_app
from vitalbridge.ehr.client import EhrClient
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.runtime import Hub
from vitalbridge.sandbox.app import create_sandbox_app
from vitalbridge.sandbox.config import SandboxConfig
from vitalbridge.sandbox.profile import Profile
from vitalbridge.servers import ServerThread
from vitalbridge.smart import keys
from vitalbridge.smart.launch import launch_scopes
from vitalbridge.smart.services import Smart, jwks_url, redirect_uri, smart_for
from vitalbridge.tenancy import service
from vitalbridge.tenancy.schemas import PracticeIn

CLIENT_ID = "vitalbridge-hub"
BACKEND_SCOPES = ["system/Patient.read", "system/Observation.read", "system/Observation.write"]
SANDBOX_DEFAULTS: dict[str, Any] = {
    # Textbook SMART; tests that meet eCW's behaviours switch them on (PUT /_sandbox/behaviour).
    "profile": Profile.generic,
    "practices": (PRACTICE, "PRAC2"),
    "patients_per_practice": 30,
    "rate_limit_per_minute": 100_000,
    # Tests rotate keys and expect the sandbox to notice at once.
    "jwks_cache_s": 0.0,
}


@dataclass
class SmartEnv:
    hub: Hub
    hub_url: str
    api: httpx.Client
    sandbox: Sandbox
    tenant: Tenant
    practice: PracticeConnection
    stack: ExitStack = field(repr=False)

    @property
    def jwks_path(self) -> str:
        """The tenant's own key set, which its practices sign with."""
        return f"/.well-known/jwks/{self.tenant.org_id}.json"

    @property
    def smart(self) -> Smart:
        return smart_for(self.hub)

    def client(self) -> EhrClient:
        return EhrClient(self.hub, self.smart)

    def add_practice(self, code: str = PRACTICE, **overrides: Any) -> PracticeConnection:
        data: dict[str, Any] = {
            "practice_code": code,
            "fhir_base_url": self.sandbox.base(code),
            "token_url": self.sandbox.token_url,
            "authorize_url": f"{self.sandbox.url}/oauth/oauth2/authorize",
            "client_id": CLIENT_ID,
            "scopes": BACKEND_SCOPES,
        }
        data.update(overrides)
        org_id = data.pop("organization_id", self.tenant.org_id)
        with self.hub.sessions() as session, session.begin():
            practice = service.add_practice(
                session, org_id, PracticeIn.model_validate(data), self.hub.sealer, self.hub.settings
            )
            return PracticeConnection.of(practice)

    def register_client(self, client_id: str = CLIENT_ID, **overrides: Any) -> None:
        body: dict[str, Any] = {
            # The organization's own key set: the URL only its keys answer (issue 10).
            "jwks_url": jwks_url(self.hub.settings, self.tenant.org_id),
            "scopes": list(dict.fromkeys([*BACKEND_SCOPES, *launch_scopes(BACKEND_SCOPES)])),
            "practices": [PRACTICE],
            "redirect_uris": [redirect_uri(self.hub.settings)],
        }
        body.update(overrides)
        self.sandbox.register(client_id, **body)


@pytest.fixture
def sandbox_options() -> dict[str, Any]:
    """Override per test (``@pytest.mark.parametrize`` or a local fixture) for other sandbox settings."""
    return {}


@pytest.fixture(scope="session")
def hub_key_pem() -> bytes:
    """One RSA key for the suite: generating 2048-bit keys per test costs more than the tests."""
    return RSAKey.generate_key(2048).as_pem(private=True)


@pytest.fixture(scope="session")
def default_sandbox() -> Iterator[Sandbox]:
    config = SandboxConfig(**SANDBOX_DEFAULTS)
    with ServerThread(create_sandbox_app(config)) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Sandbox(url, http, config)


class SwitchableApp:
    """An ASGI app that forwards to whichever hub app the current test installed.

    One loopback server for the whole session instead of one per test: starting and stopping
    uvicorn costs more than most of these tests.
    """

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self.app(scope, receive, send)


@pytest.fixture(scope="session")
def hub_server() -> Iterator[tuple[SwitchableApp, str]]:
    switch = SwitchableApp()
    with ServerThread(switch) as url:
        yield switch, url


@contextmanager
def running_env(
    hub: Hub,
    sandbox_options: dict[str, Any],
    hub_key_pem: bytes,
    default_sandbox: Sandbox,
    hub_server: tuple[SwitchableApp, str],
) -> Iterator[SmartEnv]:
    with ExitStack() as stack:
        if sandbox_options:
            config = SandboxConfig(**{**SANDBOX_DEFAULTS, **sandbox_options})
            sandbox_url = stack.enter_context(ServerThread(create_sandbox_app(config)))
            sandbox_http = stack.enter_context(httpx.Client(base_url=sandbox_url, timeout=30))
            sandbox = Sandbox(sandbox_url, sandbox_http, config)
        else:
            sandbox = Sandbox(default_sandbox.url, default_sandbox.http, default_sandbox.config)
            # Clients, tokens, grants, faults, stats and rate buckets from earlier tests are gone.
            assert sandbox.http.post("/_sandbox/reset", json={"clients": True}).status_code == 200
        switch, hub_url = hub_server
        switch.app = create_app(hub=hub, background=False)
        stack.callback(setattr, switch, "app", None)
        # The hub's URL goes into the JWKS URL and the redirect URI, as VB_PUBLIC_URL would.
        hub.settings.public_url = hub_url
        # The hub-wide ceiling (ECW_RATE_LIMIT, 10/s) would pace these tests; it has its own tests.
        hub.settings.ecw_rate_limit = 10_000.0
        api = stack.enter_context(httpx.Client(base_url=hub_url, timeout=60))
        tenant = make_tenant(hub, "Clinic A")
        with hub.sessions() as session, session.begin():
            keys.import_key(session, hub.sealer, hub_key_pem, grace_s=0, organization_id=tenant.org_id)
        env = SmartEnv(hub, hub_url, api, sandbox, tenant, None, stack)  # type: ignore[arg-type]
        env.practice = env.add_practice()
        env.register_client()
        yield env


@pytest.fixture
def smart_env(
    hub: Hub,
    sandbox_options: dict[str, Any],
    hub_key_pem: bytes,
    default_sandbox: Sandbox,
    hub_server: tuple[SwitchableApp, str],
) -> Iterator[SmartEnv]:
    with running_env(hub, sandbox_options, hub_key_pem, default_sandbox, hub_server) as env:
        yield env


@pytest.fixture
def leak_env(
    leak_harness: LeakHarness, hub_key_pem: bytes, default_sandbox: Sandbox, hub_server: tuple[SwitchableApp, str]
) -> Iterator[tuple[SmartEnv, LeakHarness]]:
    """``smart_env`` on the leak harness's hub: the real logging pipeline at DEBUG, searched after."""
    with running_env(leak_harness.hub, {}, hub_key_pem, default_sandbox, hub_server) as env:
        yield env, leak_harness
