"""The demo's own world (SPEC §7, §10, §11): a hub on a fresh database, the sandbox EHR (started
here or reached at a URL), one organization with a practice wired to it, a patient the EHR
knows, a gateway and one registered device per reading type.

The practice authenticates with ``client_secret_basic``: the demo registers its client with the
sandbox's control API, which an external sandbox may be asked for too (private_key_jwt would need
the sandbox to reach this hub's JWKS URL, which a sandbox elsewhere cannot always do).
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from vitalbridge.audit import Actor
from vitalbridge.db.base import utcnow
from vitalbridge.db.migrate import upgrade
from vitalbridge.devices import gateway_service, registry
from vitalbridge.devices.gateways import GatewayKind
from vitalbridge.patients.models import Patient
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.sandbox.app import create_sandbox_app
from vitalbridge.sandbox.config import SandboxConfig
from vitalbridge.sandbox.profile import Profile
from vitalbridge.servers import ServerThread
from vitalbridge.settings import load_settings
from vitalbridge.tenancy import service
from vitalbridge.tenancy.models import AuthMethod
from vitalbridge.tenancy.schemas import PracticeIn

ACTOR = Actor.service("demo")
SCOPES = ["system/Patient.read", "system/Observation.read", "system/Observation.write"]
KINDS = ("blood_pressure", "pulse_oximetry", "weight", "glucose")
# The sandbox the demo starts itself and its practice use the same per-minute limit, so the
# hub's pacing is what keeps the run free of real 429s (injected ones still happen).
OWN_SANDBOX_RATE = 1200
# A fault-injected timeout is held longer than the practice's request timeout.
REQUEST_TIMEOUT_S = 1.0
FAULT_TIMEOUT_S = 1.5


@dataclass
class DemoEnv:
    hub: Hub
    hub_url: str
    sandbox_url: str
    practice_code: str
    org_id: str
    gateway_id: str
    gateway_secret: str
    serials: dict[str, str] = field(default_factory=dict)
    sandbox_http: httpx.Client | None = None


def transient_faults(fault_rate: float, seed: int = 1) -> dict[str, Any]:
    """Only faults a client must survive without losing or doubling a reading, split over kinds."""
    return {
        "error_rate": round(fault_rate * 0.27, 4),
        "error_status": 503,
        "timeout_rate": round(fault_rate * 0.2, 4),
        "timeout_s": FAULT_TIMEOUT_S,
        "reset_rate": round(fault_rate * 0.2, 4),
        "rate_429": round(fault_rate * 0.13, 4),
        "retry_after_s": 1,
        "after_commit_rate": round(fault_rate * 0.2, 4),
        "seed": seed,
    }


def _hub(data_dir: Path, overrides: dict[str, Any]) -> Hub:
    base = load_settings()
    update: dict[str, Any] = {
        "data_dir": data_dir,
        "allow_private_urls": True,
        "inprocess_worker": True,
        "delivery_poll_interval_s": 0.5,
        "delivery_sweep_interval_s": 5.0,
        "delivery_quick_backoff_s": 0.2,
        "delivery_retry_base_s": 1.0,
        "delivery_retry_cap_s": 10.0,
        **overrides,
    }
    if not base.database_url:
        update["database_url"] = f"sqlite:///{data_dir / 'demo.db'}"
    if base.secret_key is None:
        update["secret_key"] = SecretStr(secrets.token_urlsafe(32))
    settings = base.model_copy(update=update)
    upgrade(settings.effective_database_url)
    return build_hub(settings)


def _register_client(http: httpx.Client, practice_code: str, client_id: str, secret: str) -> str:
    body = {"client_id": client_id, "client_secret": secret, "scopes": SCOPES, "practices": [practice_code]}
    resp = http.post("/_sandbox/clients", json=body)
    resp.raise_for_status()
    patients = http.get("/_sandbox/patients", params={"practice": practice_code, "limit": 1})
    patients.raise_for_status()
    found = patients.json()
    listed = found["patients"] if isinstance(found, dict) else found
    return str(listed[0]["id"])


@contextmanager
def demo_environment(
    *,
    sandbox_url: str | None = None,
    practice_code: str = "JAFJCD",
    fault_rate: float = 0.0,
    settings_overrides: dict[str, Any] | None = None,
    sandbox_rate_per_minute: int = OWN_SANDBOX_RATE,
    practice_rate_per_minute: int | None = None,
    profile: Profile = Profile.ecw,
) -> Iterator[DemoEnv]:
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vitalbridge-demo-")))
        hub = _hub(data_dir, settings_overrides or {})
        stack.callback(hub.close)
        own = sandbox_url is None
        if sandbox_url is None:
            config = SandboxConfig(
                practices=(practice_code,),
                patients_per_practice=20,
                rate_limit_per_minute=sandbox_rate_per_minute,
                profile=profile,
            )
            sandbox_url = stack.enter_context(ServerThread(create_sandbox_app(config)))
        http = stack.enter_context(httpx.Client(base_url=sandbox_url.rstrip("/"), timeout=30))
        client_id = f"vb-demo-{secrets.token_hex(4)}"
        secret = secrets.token_urlsafe(24)
        ehr_patient = _register_client(http, practice_code, client_id, secret)
        if fault_rate > 0:
            resp = http.put("/_sandbox/faults", json={"practice": practice_code, **transient_faults(fault_rate)})
            resp.raise_for_status()
            stack.callback(lambda: http.delete("/_sandbox/faults", params={"practice": practice_code}))
        rate = practice_rate_per_minute or (sandbox_rate_per_minute if own else 250)
        with hub.sessions() as session, session.begin():
            org = service.create_organization(session, f"Demo {secrets.token_hex(4)}")
            practice = service.add_practice(
                session,
                org.id,
                PracticeIn.model_validate(
                    {
                        "practice_code": practice_code,
                        "fhir_base_url": f"{sandbox_url.rstrip('/')}/fhir/r4/{practice_code}",
                        "token_url": f"{sandbox_url.rstrip('/')}/oauth/oauth2/token",
                        "client_id": client_id,
                        "auth_method": AuthMethod.client_secret_basic,
                        "client_secret": secret,
                        "scopes": SCOPES,
                        "rate_limit_per_minute": rate,
                    }
                ),
                hub.sealer,
                hub.settings,
            )
            practice.request_timeout_s = REQUEST_TIMEOUT_S
            patient = Patient(organization_id=org.id, practice_id=practice.id, ehr_id=ehr_patient)
            session.add(patient)
            gateway, gateway_secret = gateway_service.create_gateway(
                session, hub.sealer, organization_id=org.id, kind=GatewayKind.mioconnect, actor=ACTOR
            )
            session.flush()
            serials = {}
            for kind in KINDS:
                serial = f"demo-{kind}-{secrets.token_hex(3)}"
                registry.assign_device(
                    session, organization_id=org.id, serial=serial, patient_id=patient.id, actor=ACTOR, now=utcnow()
                )
                serials[kind] = serial
            org_id, gateway_id = org.id, gateway.id
        from vitalbridge.app import create_app

        hub_url = stack.enter_context(ServerThread(create_app(hub=hub, background=True)))
        yield DemoEnv(hub, hub_url, sandbox_url, practice_code, org_id, gateway_id, gateway_secret, serials, http)
