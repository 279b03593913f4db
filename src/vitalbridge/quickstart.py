"""``make run``: the embedded default, end to end, on one machine.

Migrates SQLite under ``VB_DATA_DIR``, starts the sandbox EHR and the hub in one event loop,
seeds a demo organization with a practice wired to the sandbox, prints URLs and an API token,
and serves until Ctrl-C. A second run reuses the same data folder and tenant.

The demo practice authenticates like a production eCW backend app: ``private_key_jwt`` with
the hub's own RS384 key (created on first run), the hub's JWKS URL registered with the
sandbox. It also keeps a client secret, so switching the practice to ``client_secret_basic``
works against the sandbox too.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import select

from vitalbridge.app import create_app
from vitalbridge.db.migrate import upgrade
from vitalbridge.errors import ConfigurationError
from vitalbridge.notify.fake_fcm import FakeFcm, ServiceAccountKey
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.sandbox.app import create_sandbox_app
from vitalbridge.sandbox.config import SandboxConfig
from vitalbridge.sandbox.synthetic import SyntheticPatients
from vitalbridge.settings import Settings
from vitalbridge.smart.keys import ensure_signing_key
from vitalbridge.smart.launch import launch_scopes
from vitalbridge.smart.services import jwks_url, redirect_uri
from vitalbridge.tenancy import service
from vitalbridge.tenancy.ecw_seed import seed_practice_from_settings
from vitalbridge.tenancy.models import AuthMethod, KeySetScope, Organization, Practice, Role
from vitalbridge.tenancy.schemas import PracticeIn

DEMO_ORG = "Demo Clinic"
FCM_DEMO_FILE = "fcm-demo-service-account.json"
DEMO_PRACTICE = "JAFJCD"
DEMO_CLIENT_ID = "vitalbridge-demo"
TOKEN_FILE = "demo-api-token"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def seed_demo_tenant(hub: Hub, sandbox_url: str) -> tuple[Practice, str]:
    """Create (once) the demo organization, its practice and an admin API token."""
    token_path = hub.settings.data_dir / TOKEN_FILE
    with hub.sessions() as session, session.begin():
        org = session.scalar(select(Organization).where(Organization.name == DEMO_ORG))
        if org is None:
            org = service.create_organization(session, DEMO_ORG)
        practice = session.scalar(
            select(Practice).where(Practice.organization_id == org.id, Practice.practice_code == DEMO_PRACTICE)
        )
        if practice is None:
            practice = service.add_practice(
                session,
                org.id,
                PracticeIn.model_validate(
                    {
                        "practice_code": DEMO_PRACTICE,
                        "name": "Demo practice (sandbox EHR)",
                        "fhir_base_url": f"{sandbox_url}/fhir/r4/{DEMO_PRACTICE}",
                        "token_url": f"{sandbox_url}/oauth/oauth2/token",
                        "authorize_url": f"{sandbox_url}/oauth/oauth2/authorize",
                        "client_id": DEMO_CLIENT_ID,
                        "auth_method": AuthMethod.private_key_jwt,
                        "client_secret": secrets.token_urlsafe(24),
                        "scopes": ["system/Patient.read", "system/Observation.write", "system/Observation.read"],
                    }
                ),
                hub.sealer,
                hub.settings,
            )
        else:
            # The ports may differ from the previous run.
            practice.fhir_base_url = f"{sandbox_url}/fhir/r4/{DEMO_PRACTICE}"
            practice.token_url = f"{sandbox_url}/oauth/oauth2/token"
            practice.authorize_url = f"{sandbox_url}/oauth/oauth2/authorize"
            if practice.auth_method is AuthMethod.client_secret_basic and practice.client_secret_sealed is not None:
                # Demo data folders from before the hub had signing keys: move them to the default.
                practice.auth_method = AuthMethod.private_key_jwt
            # The sandbox client is registered anew on every start, with the organization's
            # JWKS URL, so a demo folder from before per-organization key sets moves at once.
            practice.signing_key_set = KeySetScope.organization
        ensure_signing_key(session, hub.sealer, key_size=hub.settings.key_size, organization_id=org.id)
        if not token_path.exists():
            _row, raw = service.create_api_token(session, org.id, Role.admin, name="make run demo")
            _write_private(token_path, raw)
    return practice, token_path.read_text().strip()


async def register_demo_client(hub: Hub, practice: Practice, sandbox_url: str) -> None:
    """The sandbox keeps clients in memory, so every start registers the demo client again:
    the hub's JWKS URL (private_key_jwt), its secret (client_secret_basic), backend scopes and
    the standalone launch's user scopes and redirect URI."""
    secret = service.practice_client_secret(practice, hub.sealer)
    scopes = practice.scopes.split()
    body = {
        "client_id": practice.client_id,
        "jwks_url": jwks_url(hub.settings, practice.organization_id),
        "client_secret": secret,
        "scopes": list(dict.fromkeys([*scopes, *launch_scopes(scopes)])),
        "practices": [practice.practice_code],
        "redirect_uris": [redirect_uri(hub.settings)],
    }
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(50):
            try:
                resp = await client.post(f"{sandbox_url}/_sandbox/clients", json=body)
                resp.raise_for_status()
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"sandbox at {sandbox_url} did not come up")


def prepare_demo_fcm(settings: Settings) -> tuple[Settings, FakeFcm | None]:
    """Without real FCM credentials, push goes to a fake FCM endpoint on loopback: a demo
    service account (kept under VB_DATA_DIR, its token_uri rewritten for this run's port)."""
    if settings.fcm_credentials_file is not None:
        return settings, None
    path = settings.data_dir / FCM_DEMO_FILE
    account = ServiceAccountKey.read(path) if path.exists() else ServiceAccountKey("vitalbridge-demo")
    url = f"http://127.0.0.1:{settings.fake_fcm_port}"
    account.write(path, f"{url}/token")
    return settings.model_copy(update={"fcm_credentials_file": path, "fcm_endpoint": url}), FakeFcm(account)


def check_ports(settings: Settings) -> None:
    """Every server `make run` starts needs its own free port: say which one is taken before
    starting anything, instead of a server failing half-way with a traceback."""
    wanted = [("VB_PORT", settings.host, settings.port), ("VB_SANDBOX_PORT", "127.0.0.1", settings.sandbox_port)]
    if settings.fcm_credentials_file is None:
        wanted.append(("VB_FAKE_FCM_PORT", "127.0.0.1", settings.fake_fcm_port))
    seen: dict[int, str] = {}
    for name, _host, port in wanted:
        if port in seen:
            raise ConfigurationError(f"{seen[port]} and {name} are both {port}: give each server its own port")
        seen[port] = name
    for name, host, port in wanted:
        require_free_port(name, host, port, "make run")


def require_free_port(name: str, host: str, port: int, command: str) -> None:
    """Fail with one line naming the setting when ``host:port`` cannot be bound."""
    if port == 0:
        return  # any free port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: SO_REUSEADDR lets a port in TIME_WAIT pass, never a listening one.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(
                f"port {port} on {host} ({name}) is not available ({exc.strerror or 'in use'}): "
                f"stop what uses it, or choose another, e.g. `{name}={port + 100} {command}`"
            ) from None


async def run_quickstart(settings: Settings) -> None:
    settings = settings.model_copy(update={"allow_private_urls": True})
    check_ports(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings, fake_fcm = prepare_demo_fcm(settings)
    upgrade(settings.effective_database_url)
    hub = build_hub(settings)
    sandbox_url = f"http://127.0.0.1:{settings.sandbox_port}"
    practice, api_token = seed_demo_tenant(hub, sandbox_url)
    with hub.sessions() as session, session.begin():
        seed_practice_from_settings(session, settings, hub.sealer)

    sandbox_config = SandboxConfig(practices=(DEMO_PRACTICE,))
    first_patient = SyntheticPatients(sandbox_config.seed, DEMO_PRACTICE, sandbox_config.patients_per_practice)
    sandbox_server = uvicorn.Server(
        uvicorn.Config(
            create_sandbox_app(sandbox_config),
            host="127.0.0.1",
            port=settings.sandbox_port,
            log_level="warning",
            log_config=None,
        )
    )
    hub_server = uvicorn.Server(
        uvicorn.Config(
            create_app(hub=hub),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            log_config=None,
            proxy_headers=False,  # the app applies VB_TRUSTED_PROXIES itself
        )
    )
    sandbox_task = asyncio.create_task(sandbox_server.serve())
    fcm_server = None
    tasks = [sandbox_task]
    if fake_fcm is not None:
        fcm_server = uvicorn.Server(
            uvicorn.Config(
                fake_fcm.app, host="127.0.0.1", port=settings.fake_fcm_port, log_level="warning", log_config=None
            )
        )
        tasks.append(asyncio.create_task(fcm_server.serve()))
    await register_demo_client(hub, practice, sandbox_url)
    hub_task = asyncio.create_task(hub_server.serve())
    while not hub_server.started and not hub_task.done():
        await asyncio.sleep(0.05)
    if hub_task.done():
        sandbox_server.should_exit = True
        if fcm_server is not None:
            fcm_server.should_exit = True
        await asyncio.gather(*tasks)
        raise SystemExit(f"the hub could not start on port {settings.port} (set VB_PORT to another port)")
    print(
        "\n".join(
            [
                "",
                "vitalbridge is running (embedded default: SQLite, in-process worker, sandbox EHR)",
                f"  hub API        {settings.base_url}   (docs: {settings.base_url}/docs)",
                f"  health         {settings.base_url}/healthz",
                f"  JWKS           {jwks_url(settings, practice.organization_id)}   (demo organization's keys)",
                f"  organization   {DEMO_ORG}   (id {practice.organization_id}; practice {DEMO_PRACTICE})",
                f"  sandbox EHR    {sandbox_url}/fhir/r4/{DEMO_PRACTICE}",
                f"  EHR patient    {first_patient.id_for(0)}   (the sandbox's first synthetic patient; README:"
                " First reading in five minutes)",
                f"  data folder    {settings.data_dir.resolve()}",
                (
                    f"  fake FCM       {settings.fcm_endpoint}/_fake/messages   (or: vitalbridge notify received)"
                    if fake_fcm is not None
                    else f"  FCM            {settings.fcm_endpoint} (project from {settings.fcm_credentials_file})"
                ),
                f"  API token      {api_token}",
                "",
                f'  try: curl -H "Authorization: Bearer {api_token}" {settings.base_url}/api/v1/practices/',
                "Press Ctrl-C to stop.",
            ]
        ),
        flush=True,
    )
    try:
        await asyncio.gather(hub_task, *tasks)
    finally:
        hub_server.should_exit = True
        sandbox_server.should_exit = True
        if fcm_server is not None:
            fcm_server.should_exit = True
        hub.close()
