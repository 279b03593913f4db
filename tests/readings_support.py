"""Shared set-up for the readings-pipeline tests: a tenant with a practice, a gateway, patients."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
from sqlalchemy import func, select, text

from tests.support import make_tenant, token_for
from vitalbridge.audit import Actor
from vitalbridge.db.engine import make_engine
from vitalbridge.devices import gateway_service
from vitalbridge.devices.gateways import GatewayKind
from vitalbridge.devices.simulator import make_record, post_webhook
from vitalbridge.patients.models import Patient, Program, Provider
from vitalbridge.runtime import Hub
from vitalbridge.tenancy import service
from vitalbridge.tenancy.models import Role, User
from vitalbridge.tenancy.schemas import PracticeIn

ADMIN = Actor.service("test")


@dataclass
class World:
    hub: Hub
    org_id: str
    practice_id: str
    gateway_id: str
    secret: str
    admin: dict[str, str]
    clinician: dict[str, str]
    integration: dict[str, str]

    def post(
        self,
        client: httpx.Client,
        record: dict[str, Any] | bytes,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> httpx.Response:
        return post_webhook(
            client, str(client.base_url), self.gateway_id, secret or self.secret, record, timestamp=timestamp
        )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_world(hub: Hub, name: str = "Org A") -> World:
    tenant = make_tenant(hub, name)
    # Each organization registers its own EHR tenant and client: the hub refuses a second
    # organization claiming either (issue 10).
    slug = "" if name == "Org A" else "-" + name.lower().replace(" ", "-")
    with hub.sessions() as session, session.begin():
        practice = service.add_practice(
            session,
            tenant.org_id,
            PracticeIn.model_validate(
                {
                    "practice_code": "JAFJCD",
                    "fhir_base_url": f"https://fhir{slug}.example.org/fhir/r4/JAFJCD",
                    "token_url": "https://oauth.example.org/oauth/oauth2/token",
                    "client_id": f"client-1{slug}",
                }
            ),
            hub.sealer,
            hub.settings,
        )
        gw, secret = gateway_service.create_gateway(
            session, hub.sealer, organization_id=tenant.org_id, kind=GatewayKind.mioconnect, actor=ADMIN
        )
    return World(
        hub=hub,
        org_id=tenant.org_id,
        practice_id=practice.id,
        gateway_id=gw.id,
        secret=secret,
        admin=tenant.headers,
        clinician=_bearer(token_for(hub, tenant.org_id, Role.clinician)),
        integration=_bearer(token_for(hub, tenant.org_id, Role.integration)),
    )


def add_program(hub: Hub, world: World, code: str, rules: dict[str, Any] | None = None) -> str:
    with hub.sessions() as session, session.begin():
        program = Program(organization_id=world.org_id, code=code, name=code, rules=rules or {})
        session.add(program)
        session.flush()
        return program.id


def add_patient(
    hub: Hub,
    world: World,
    *,
    ehr_id: str | None = "ehr-1001",
    program_id: str | None = None,
    with_provider_user: bool = False,
) -> str:
    with hub.sessions() as session, session.begin():
        provider_id = None
        if with_provider_user:
            user = User(organization_id=world.org_id, email=f"dr-{ehr_id}@example.org", role=Role.clinician)
            session.add(user)
            session.flush()
            provider = Provider(organization_id=world.org_id, name="Dr Example", user_id=user.id)
            session.add(provider)
            session.flush()
            provider_id = provider.id
        patient = Patient(
            organization_id=world.org_id,
            practice_id=world.practice_id,
            ehr_id=ehr_id,
            given_name="Ada",
            family_name="Testpatient",
            program_id=program_id,
            provider_id=provider_id,
        )
        session.add(patient)
        session.flush()
        return patient.id


def assign(client: httpx.Client, world: World, device: str, patient_id: str | None) -> httpx.Response:
    return client.post(
        "/api/v1/devices/", json={"device_id": device, "patient_id": patient_id}, headers=world.clinician
    )


def recent(minutes: int = 5) -> datetime:
    """A measured-at a few minutes ago in a US Eastern-like offset (exercises offset handling)."""
    return (datetime.now(UTC) - timedelta(minutes=minutes)).astimezone(timezone(timedelta(hours=-5)))


def bp(
    reading_id: str,
    device: str = "356938035643809",
    systolic: float = 138,
    diastolic: float = 88,
    pulse: float | None = 72,
    at: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {"systolic": systolic, "diastolic": diastolic, "unit": "mmHg", **extra}
    if pulse is not None:
        data["pulse"] = pulse
    return make_record(reading_id, device, "blood_pressure", at or recent(), data, id_type="imei", model="UA-651BLE")


def weight(
    reading_id: str, value: float, unit: str = "kg", device: str = "SCALE-1", at: datetime | None = None
) -> dict[str, Any]:
    return make_record(reading_id, device, "weight", at or recent(), {"weight": value, "unit": unit})


def glucose(
    reading_id: str,
    value: float,
    unit: str = "mg/dL",
    meal: str | None = "fasting",
    device: str = "GLU-1",
    at: datetime | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"glucose": value, "unit": unit}
    if meal:
        data["meal"] = meal
    return make_record(reading_id, device, "glucose", at or recent(), data)


def spo2(
    reading_id: str, value: float, pulse: float | None = 70, device: str = "OXI-1", at: datetime | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {"spo2": value}
    if pulse is not None:
        data["pulse"] = pulse
    return make_record(reading_id, device, "pulse_oximetry", at or recent(), data)


def count(hub: Hub, model: type, *where: Any) -> int:
    with hub.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def use_hub_database(hub: Hub, monkeypatch: Any) -> None:
    """Point the CLI (which reads VB_* from the environment) at the test's hub."""
    s = hub.settings
    monkeypatch.setenv("VB_DATABASE_URL", s.effective_database_url)
    monkeypatch.setenv("VB_DATA_DIR", str(s.data_dir))
    assert s.secret_key is not None
    monkeypatch.setenv("VB_SECRET_KEY", s.secret_key.get_secret_value())
    # And its URL policy: the hub's peers (simulators, fake FCM, the sandbox) live on loopback.
    monkeypatch.setenv("VB_ALLOW_PRIVATE_URLS", str(s.allow_private_urls).lower())


@contextmanager
def inserts_fail(url: str, table: str) -> Iterator[None]:
    """A real database failure: a trigger refuses every insert into ``table`` until the block ends."""
    engine = make_engine(url)
    pg = engine.dialect.name == "postgresql"
    name = f"vb_test_fail_{table}"
    with engine.begin() as conn:
        if pg:
            conn.execute(
                text(
                    f"CREATE FUNCTION {name}() RETURNS trigger AS $$ "
                    "BEGIN RAISE EXCEPTION 'forced'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(text(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"))
        else:
            conn.execute(
                text(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'forced'); END")
            )
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TRIGGER {name} ON {table}" if pg else f"DROP TRIGGER {name}"))
            if pg:
                conn.execute(text(f"DROP FUNCTION {name}()"))
        engine.dispose()
