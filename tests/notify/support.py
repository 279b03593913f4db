"""Helpers for push tests: clinicians with user-bound tokens, registered phones, alerts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from vitalbridge.audit import Actor
from vitalbridge.db.base import utcnow
from vitalbridge.notify.codes import Platform, PushStatus
from vitalbridge.notify.fake_fcm import FakeFcm, ServiceAccountKey
from vitalbridge.notify.models import ProgramAlerting, PushOutbox
from vitalbridge.notify.registry import register
from vitalbridge.patients.models import Patient, Program, Provider
from vitalbridge.runtime import Hub
from vitalbridge.tenancy import service
from vitalbridge.tenancy.models import Practice, Role
from vitalbridge.triage import alerts
from vitalbridge.triage.codes import Severity

TEST_ACTOR = Actor.service("test")


@dataclass
class Fcm:
    fake: FakeFcm
    url: str
    credentials: Path
    account: ServiceAccountKey


@dataclass
class Clinician:
    user_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def fcm_token(label: str = "") -> str:
    """A registration-token-shaped value (FCM's are ~150 URL-safe characters with a colon)."""
    return f"{label}{secrets.token_urlsafe(16)}:APA91b{secrets.token_urlsafe(96)}"


def make_org(hub: Hub, name: str = "Push Org") -> tuple[str, str]:
    """An organization with one practice (no EHR calls happen in push tests)."""
    with hub.sessions() as session, session.begin():
        org = service.create_organization(session, name)
        practice = Practice(
            organization_id=org.id,
            name="Push practice",
            practice_code="PUSH1",
            fhir_base_url="https://fhir.example.org/fhir/r4/PUSH1",
            token_url="https://oauth.example.org/token",
            client_id="push-client",
        )
        session.add(practice)
        session.flush()
        return org.id, practice.id


def make_clinician(hub: Hub, org_id: str, email: str, role: Role = Role.clinician) -> Clinician:
    with hub.sessions() as session, session.begin():
        user = service.create_user(session, org_id, email, role)
        _row, raw = service.create_api_token(session, org_id, role, user_id=user.id)
        return Clinician(user.id, raw)


def make_patient(
    hub: Hub,
    org_id: str,
    practice_id: str,
    *,
    provider_user_id: str | None = None,
    program_id: str | None = None,
    given: str = "Ada",
    family: str = "Testpatient",
    mrn: str | None = "MRN-0001",
) -> str:
    with hub.sessions() as session, session.begin():
        provider_id = None
        if provider_user_id:
            provider = Provider(organization_id=org_id, name="Dr Example", user_id=provider_user_id)
            session.add(provider)
            session.flush()
            provider_id = provider.id
        patient = Patient(
            organization_id=org_id,
            practice_id=practice_id,
            ehr_id=f"ehr-{secrets.token_hex(4)}",
            mrn=mrn,
            given_name=given,
            family_name=family,
            provider_id=provider_id,
            program_id=program_id,
        )
        session.add(patient)
        session.flush()
        return patient.id


def make_program(
    hub: Hub, org_id: str, code: str, on_call: list[str] | None = None, escalation_minutes: int | None = None
) -> str:
    with hub.sessions() as session, session.begin():
        program = Program(organization_id=org_id, code=code, name=code)
        session.add(program)
        session.flush()
        if on_call is not None or escalation_minutes is not None:
            session.add(
                ProgramAlerting(
                    program_id=program.id,
                    organization_id=org_id,
                    on_call_user_ids=on_call or [],
                    escalation_minutes=escalation_minutes,
                )
            )
        return program.id


def add_device(hub: Hub, org_id: str, user_id: str, token: str, platform: Platform = Platform.android) -> str:
    with hub.sessions() as session, session.begin():
        reg = register(
            session,
            hub.sealer,
            organization_id=org_id,
            user_id=user_id,
            token=token,
            platform=platform,
            actor=TEST_ACTOR,
            now=utcnow(),
        )
        return reg.device.id


def open_alert(
    hub: Hub,
    org_id: str,
    patient_id: str,
    *,
    severity: Severity = Severity.critical,
    rule_code: str = "bp_systolic_high",
    at: datetime | None = None,
    detail: dict[str, Any] | None = None,
) -> str:
    with hub.sessions() as session, session.begin():
        change = alerts.open_or_update(
            session,
            organization_id=org_id,
            patient_id=patient_id,
            rule_code=rule_code,
            severity=severity,
            at=at or utcnow(),
            actor=TEST_ACTOR,
            detail=detail,
        )
        return change.alert.id


def resolve_alert(hub: Hub, org_id: str, alert_id: str, *, at: datetime | None = None, note: str | None = None) -> None:
    with hub.sessions() as session, session.begin():
        alerts.resolve(
            session, organization_id=org_id, alert_id=alert_id, actor=TEST_ACTOR, at=at or utcnow(), note=note
        )


def acknowledge_alert(hub: Hub, org_id: str, alert_id: str, *, at: datetime | None = None) -> None:
    with hub.sessions() as session, session.begin():
        alerts.acknowledge(session, organization_id=org_id, alert_id=alert_id, actor=TEST_ACTOR, at=at or utcnow())


def pushes(hub: Hub, **where: Any) -> list[PushOutbox]:
    with hub.sessions() as session:
        q = select(PushOutbox).order_by(PushOutbox.created_at, PushOutbox.id)
        for name, value in where.items():
            q = q.where(getattr(PushOutbox, name) == value)
        return list(session.scalars(q))


def statuses(hub: Hub) -> list[PushStatus]:
    return [p.status for p in pushes(hub)]


def received(fcm: Fcm) -> list[dict[str, Any]]:
    """The messages the fake FCM accepted, over its own HTTP API."""
    resp = httpx.get(f"{fcm.url}/_fake/messages", timeout=10)
    resp.raise_for_status()
    return [m["message"] for m in resp.json()["messages"]]
