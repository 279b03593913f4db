"""A tenant ready for billing tests: practice, gateway, two devices, patients, providers.

Readings are written as rows (the ingest path is tested in tests/devices); ``post_reading``
sends one through the real webhook when a test needs the whole path.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from vitalbridge.audit import Actor
from vitalbridge.billing import episodes, timelog
from vitalbridge.billing.months import Policy
from vitalbridge.billing.report import compute_report
from vitalbridge.billing.schemas import EpisodeIn, TimeEntryIn
from vitalbridge.devices import gateway_service
from vitalbridge.devices.gateways import GatewayKind
from vitalbridge.devices.models import Device, Reading
from vitalbridge.devices.readings import ReadingOrigin, ReadingSource, ReadingType
from vitalbridge.patients.models import Patient, Provider
from vitalbridge.runtime import Hub
from vitalbridge.tenancy import service
from vitalbridge.tenancy.models import Practice
from vitalbridge.tenancy.schemas import PracticeIn

ACTOR = Actor.service("billing-test")
_seq = itertools.count(1)


@dataclass
class BillingWorld:
    hub: Hub
    org_id: str
    practice_id: str
    gateway_id: str
    device_ids: list[str]
    provider_id: str
    physician_id: str
    patients: list[str] = field(default_factory=list)

    def add_patient(self, family: str = "Testpatient") -> str:
        with self.hub.sessions() as session, session.begin():
            p = Patient(
                organization_id=self.org_id,
                practice_id=self.practice_id,
                ehr_id=f"ehr-{next(_seq)}",
                mrn=f"MRN{next(_seq)}",
                given_name="Ada",
                family_name=family,
            )
            session.add(p)
            session.flush()
            self.patients.append(p.id)
            return p.id

    def enroll(
        self,
        patient_id: str,
        *,
        tz: str,
        started_on: date,
        ended_on: date | None = None,
        program: str = "rpm",
        setup_on: date | None = None,
    ) -> str:
        body = EpisodeIn.model_validate(
            {
                "patient_id": patient_id,
                "program": program,
                "time_zone": tz,
                "ordering_practitioner_id": self.physician_id,
                "condition_code": "I10",
                "consent": {
                    "at": f"{started_on.isoformat()}T09:00:00+00:00",
                    "modality": "verbal",
                    "recorded_by": "RN Lee",
                },
                "setup": {"on": (setup_on or started_on).isoformat(), "staff": "RN Lee"},
                "billing_practitioner_id": self.physician_id,
                "started_on": started_on.isoformat(),
                "ended_on": ended_on.isoformat() if ended_on else None,
            }
        )
        with self.hub.sessions() as session, session.begin():
            return episodes.enroll(session, self.org_id, body, actor=ACTOR).id

    def reading(
        self,
        patient_id: str,
        at: datetime,
        *,
        origin: ReadingOrigin = ReadingOrigin.device,
        device: int = 0,
        gateway_reading_id: str | None = None,
    ) -> None:
        assert at.tzinfo is not None
        with self.hub.sessions() as session, session.begin():
            session.add(
                Reading(
                    organization_id=self.org_id,
                    gateway_id=self.gateway_id,
                    gateway_reading_id=gateway_reading_id or f"r-{next(_seq)}",
                    source=ReadingSource.webhook,
                    origin=origin,
                    device_id=self.device_ids[device],
                    patient_id=patient_id,
                    reading_type=ReadingType.blood_pressure,
                    measured_at=at,
                    measured_offset_min=int((at.utcoffset() or timedelta(0)).total_seconds() // 60),
                    received_at=datetime.now(UTC),
                )
            )

    def log(self, patient_id: str, started_at: datetime, minutes: float, **extra: Any) -> str:
        doc: dict[str, Any] = {
            "patient_id": patient_id,
            "staff": "RN Lee",
            "credential": "clinical_staff",
            "started_at": started_at.isoformat(),
            "minutes": minutes,
            "activity": "data_review",
            **extra,
        }
        with self.hub.sessions() as session, session.begin():
            return timelog.log_time(session, self.org_id, TimeEntryIn.model_validate(doc), actor=ACTOR).id

    def report(self, month: str, as_of: datetime, policy: Policy | None = None) -> dict[str, Any]:
        with self.hub.sessions() as session:
            practice = session.get(Practice, self.practice_id)
            assert practice is not None
            return compute_report(session, practice, month, as_of=as_of, policy=policy or Policy())

    def row(self, month: str, as_of: datetime, patient_id: str, policy: Policy | None = None) -> dict[str, Any]:
        rows = [r for r in self.report(month, as_of, policy)["patients"] if r["patient_id"] == patient_id]
        assert len(rows) == 1, rows
        return rows[0]


def make_billing_world(hub: Hub, name: str = "Billing Org") -> BillingWorld:
    with hub.sessions() as session, session.begin():
        org = service.create_organization(session, name)
        practice = service.add_practice(
            session,
            org.id,
            PracticeIn.model_validate(
                {
                    "practice_code": "BILLPRAC",
                    "fhir_base_url": "https://fhir.example.org/fhir/r4/BILLPRAC",
                    "token_url": "https://oauth.example.org/oauth/oauth2/token",
                    "client_id": "client-1",
                }
            ),
            hub.sealer,
            hub.settings,
        )
        gw, _secret = gateway_service.create_gateway(
            session, hub.sealer, organization_id=org.id, kind=GatewayKind.mioconnect, actor=ACTOR
        )
        devices = [Device(organization_id=org.id, serial=f"DEV{i}") for i in range(2)]
        session.add_all(devices)
        nurse = Provider(organization_id=org.id, name="NP Example")
        doctor = Provider(organization_id=org.id, name="Dr Example", npi="1234567893")
        session.add_all([nurse, doctor])
        session.flush()
        return BillingWorld(hub, org.id, practice.id, gw.id, [d.id for d in devices], nurse.id, doctor.id)


def local(tz: str, text: str) -> datetime:
    """``2026-11-03T08:00`` in ``tz`` as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))


def daily(tz: str, first: date, count: int, at: str = "08:00") -> list[datetime]:
    return [local(tz, f"{(first + timedelta(days=i)).isoformat()}T{at}") for i in range(count)]


def utc_daily(first: datetime, count: int) -> list[datetime]:
    return [first + timedelta(days=i) for i in range(count)]
