"""Delivery tests: a tenant whose practice points at a real EHR on loopback (the sandbox, or a
scripted peer that answers chosen statuses), a patient known to that EHR, and readings posted
through the real webhook."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select

from tests.support import make_tenant
from vitalbridge.audit import Actor
from vitalbridge.db.base import utcnow
from vitalbridge.delivery.models import OutboxEntry
from vitalbridge.devices import gateway_service, registry
from vitalbridge.devices.gateways import GatewayKind
from vitalbridge.devices.simulator import make_record, post_webhook
from vitalbridge.patients.models import Patient
from vitalbridge.runtime import Hub
from vitalbridge.sandbox.app import create_sandbox_app
from vitalbridge.sandbox.config import SandboxConfig
from vitalbridge.servers import ServerThread
from vitalbridge.tenancy import service
from vitalbridge.tenancy.models import AuthMethod
from vitalbridge.tenancy.schemas import PracticeIn

PRACTICE = "JAFJCD"
CLIENT_ID = "vb-delivery"
SECRET = "delivery-secret-1"
SCOPES = ["system/Patient.read", "system/Observation.read", "system/Observation.write"]
ADMIN = Actor.service("test")


@dataclass
class Env:
    hub: Hub
    ehr_url: str
    org_id: str
    practice_id: str
    patient_id: str
    ehr_patient_id: str
    gateway_id: str
    gateway_secret: str
    serials: dict[str, str] = field(default_factory=dict)

    def statuses(self) -> dict[str, int]:
        with self.hub.sessions() as session:
            rows = session.execute(select(OutboxEntry.status, func.count()).group_by(OutboxEntry.status)).all()
        return {s.value: n for s, n in rows}

    def rows(self) -> list[OutboxEntry]:
        with self.hub.sessions() as session:
            return list(session.scalars(select(OutboxEntry).order_by(OutboxEntry.created_at)).all())


def make_env(hub: Hub, ehr_url: str, *, ehr_patient_id: str, rate_limit: int = 100_000, timeout_s: float = 5.0) -> Env:
    hub.settings.ecw_rate_limit = 100_000.0
    tenant = make_tenant(hub, "Delivery clinic")
    with hub.sessions() as session, session.begin():
        practice = service.add_practice(
            session,
            tenant.org_id,
            PracticeIn.model_validate(
                {
                    "practice_code": PRACTICE,
                    "fhir_base_url": f"{ehr_url}/fhir/r4/{PRACTICE}",
                    "token_url": f"{ehr_url}/oauth/oauth2/token",
                    "client_id": CLIENT_ID,
                    "auth_method": AuthMethod.client_secret_basic,
                    "client_secret": SECRET,
                    "scopes": SCOPES,
                    "rate_limit_per_minute": rate_limit,
                }
            ),
            hub.sealer,
            hub.settings,
        )
        practice.request_timeout_s = timeout_s
        patient = Patient(
            organization_id=tenant.org_id,
            practice_id=practice.id,
            ehr_id=ehr_patient_id,
            given_name="Ada",
            family_name="Deliverytest",
        )
        session.add(patient)
        gw, secret = gateway_service.create_gateway(
            session, hub.sealer, organization_id=tenant.org_id, kind=GatewayKind.mioconnect, actor=ADMIN
        )
        session.flush()
        env = Env(hub, ehr_url, tenant.org_id, practice.id, patient.id, ehr_patient_id, gw.id, secret)
        for kind in ("blood_pressure", "pulse_oximetry", "weight", "glucose"):
            serial = f"dev-{kind}"
            registry.assign_device(
                session, organization_id=tenant.org_id, serial=serial, patient_id=patient.id, actor=ADMIN, now=utcnow()
            )
            env.serials[kind] = serial
    return env


_counter = itertools.count()


def record(env: Env, i: int, *, measured_at: datetime | None = None) -> dict[str, Any]:
    """Mixed readings: BP with pulse, SpO2 with pulse, weight in lb or kg, glucose mg/dL or mmol/L."""
    at = measured_at or (datetime.now(UTC) - timedelta(seconds=30))
    kind = ("blood_pressure", "pulse_oximetry", "weight", "glucose")[i % 4]
    data: dict[str, Any]
    if kind == "blood_pressure":
        data = {"systolic": 120 + i % 20, "diastolic": 75 + i % 10, "pulse": 60 + i % 30, "unit": "mmHg"}
    elif kind == "pulse_oximetry":
        data = {"spo2": 94 + i % 5, "pulse": 60 + i % 30}
    elif kind == "weight":
        data = {"weight": 150 + i % 40, "unit": "lb"} if i % 8 < 4 else {"weight": 70 + i % 20, "unit": "kg"}
    else:
        data = {"glucose": 90 + i % 80, "unit": "mg/dL"} if i % 8 < 4 else {"glucose": 5.5, "unit": "mmol/L"}
    return make_record(f"r-{next(_counter)}-{i}", env.serials[kind], kind, at, data)


def post_readings(env: Env, hub_url: str, n: int) -> int:
    """Post ``n`` readings through the webhook; returns how many Observations they make."""
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            resp = post_webhook(client, hub_url, env.gateway_id, env.gateway_secret, record(env, i))
            assert resp.status_code in (200, 202), resp.text
    with env.hub.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(OutboxEntry)) or 0)


@contextmanager
def hub_http(hub: Hub) -> Iterator[str]:
    from vitalbridge.app import create_app

    with ServerThread(create_app(hub=hub, background=False)) as url:
        yield url


@dataclass
class Sandbox:
    url: str
    http: httpx.Client
    # The running sandbox's SandboxState, for tests that move its clock.
    state: Any = None

    def behave(self, **switches: Any) -> dict[str, Any]:
        """Change behaviour switches (PUT /_sandbox/behaviour); returns those in force."""
        resp = self.http.put("/_sandbox/behaviour", json=switches)
        assert resp.status_code == 200, resp.text
        result: dict[str, Any] = resp.json()
        return result

    def patient_id(self) -> str:
        resp = self.http.get("/_sandbox/patients", params={"practice": PRACTICE, "limit": 1})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        patients = body["patients"] if isinstance(body, dict) else body
        return str(patients[0]["id"])

    def faults(self, **plan: Any) -> None:
        resp = self.http.put("/_sandbox/faults", json={"practice": PRACTICE, **plan})
        assert resp.status_code == 200, resp.text

    def clear_faults(self) -> None:
        assert self.http.delete("/_sandbox/faults").status_code == 200

    def observations(self) -> list[dict[str, Any]]:
        resp = self.http.get("/_sandbox/observations", params={"practice": PRACTICE})
        return [o["resource"] for o in resp.json()["observations"]]

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.http.get("/_sandbox/stats").json()
        return result


@contextmanager
def sandbox(**config: Any) -> Iterator[Sandbox]:
    options: dict[str, Any] = {"practices": (PRACTICE,), "patients_per_practice": 5, "rate_limit_per_minute": 0}
    options.update(config)
    with ExitStack() as stack:
        app = create_sandbox_app(SandboxConfig(**options))
        url = stack.enter_context(ServerThread(app))
        http = stack.enter_context(httpx.Client(base_url=url, timeout=30))
        resp = http.post(
            "/_sandbox/clients",
            json={"client_id": CLIENT_ID, "client_secret": SECRET, "scopes": SCOPES, "practices": [PRACTICE]},
        )
        assert resp.status_code in (200, 201), resp.text
        yield Sandbox(url, http, app.state.sandbox)


def identifiers(observations: list[dict[str, Any]]) -> list[str]:
    return [f"{o['identifier'][0]['system']}|{o['identifier'][0]['value']}" for o in observations]


class ScriptedEhr:
    """A small real FHIR peer on loopback: a token endpoint, a CapabilityStatement, Observation
    search over what it stored, and a create that answers the statuses a test queues (then 201)."""

    def __init__(self, *, conditional_create: bool = True) -> None:
        self.conditional_create = conditional_create
        self.script: list[tuple[int, dict[str, str], Any, bool]] = []  # status, headers, body, store first
        self.stored: dict[str, dict[str, Any]] = {}
        self.posts = 0
        self.searches = 0
        self.token_requests = 0
        self.token_status: list[int] = []
        self.lock = threading.Lock()
        self.app = self._build()

    def then(
        self, status: int, *, headers: dict[str, str] | None = None, body: Any = None, store: bool = False
    ) -> None:
        self.script.append((status, headers or {}, body, store))

    def _store(self, resource: dict[str, Any]) -> str:
        ehr_id = f"obs-{len(self.stored) + 1}"
        self.stored[ehr_id] = {**resource, "id": ehr_id}
        return ehr_id

    def _match(self, token: str) -> str | None:
        for ehr_id, res in self.stored.items():
            ident = res["identifier"][0]
            if f"{ident['system']}|{ident['value']}" == token:
                return ehr_id
        return None

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/oauth/oauth2/token")
        async def token() -> Response:
            with self.lock:
                self.token_requests += 1
                status = self.token_status.pop(0) if self.token_status else 200
            if status != 200:
                return JSONResponse({"error": "invalid_client"}, status_code=status)
            return JSONResponse(
                {
                    "access_token": f"tok-{self.token_requests}",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "scope": " ".join(SCOPES),
                }
            )

        @app.get("/fhir/r4/{practice}/metadata")
        async def metadata(practice: str) -> Response:
            resource = {"type": "Observation", "conditionalCreate": self.conditional_create}
            return JSONResponse(
                {
                    "resourceType": "CapabilityStatement",
                    "status": "active",
                    "kind": "instance",
                    "fhirVersion": "4.0.1",
                    "format": ["json"],
                    "rest": [{"mode": "server", "resource": [resource]}],
                }
            )

        @app.get("/fhir/r4/{practice}/Observation")
        async def search(practice: str, identifier: str = "") -> Response:
            with self.lock:
                self.searches += 1
                found = self._match(identifier)
            entries = [{"resource": self.stored[found]}] if found else []
            return JSONResponse(
                {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
            )

        @app.post("/fhir/r4/{practice}/Observation")
        async def create(practice: str, request: Request) -> Response:
            resource = await request.json()
            with self.lock:
                self.posts += 1
                step = self.script.pop(0) if self.script else None
                if step is not None:
                    status, headers, body, store = step
                    if store:
                        self._store(resource)
                    return JSONResponse(body if body is not None else {}, status_code=status, headers=headers)
                if self.conditional_create and request.headers.get("if-none-exist"):
                    existing = self._match(request.headers["if-none-exist"].removeprefix("identifier="))
                    if existing:
                        return JSONResponse(
                            self.stored[existing],
                            status_code=200,
                            headers={"Location": f"Observation/{existing}/_history/1"},
                        )
                ehr_id = self._store(resource)
            return JSONResponse(
                self.stored[ehr_id], status_code=201, headers={"Location": f"Observation/{ehr_id}/_history/1"}
            )

        return app
