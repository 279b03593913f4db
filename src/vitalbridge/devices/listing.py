"""Reading history with delivery status, for the API and the dashboard (SPEC §5, §7)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.delivery.models import OutboxEntry
from vitalbridge.devices.models import Device, Measurement, Reading
from vitalbridge.devices.schemas import MeasurementOut, ReadingOut
from vitalbridge.errors import NotFound
from vitalbridge.patients.models import Patient


def list_readings(
    session: Session,
    organization_id: str,
    *,
    patient_id: str | None = None,
    device: str | None = None,
    unassigned: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[ReadingOut]:
    q = select(Reading).where(Reading.organization_id == organization_id)
    if patient_id is not None:
        owned = session.scalar(
            select(Patient.id).where(Patient.id == patient_id, Patient.organization_id == organization_id)
        )
        if owned is None:
            raise NotFound("no such patient in this organization")
        q = q.where(Reading.patient_id == patient_id)
    if device is not None:
        dev = session.scalar(
            select(Device.id).where(
                Device.organization_id == organization_id, (Device.id == device) | (Device.serial == device)
            )
        )
        if dev is None:
            raise NotFound("no such device in this organization")
        q = q.where(Reading.device_id == dev)
    if unassigned is not None:
        q = q.where(Reading.patient_id.is_(None) if unassigned else Reading.patient_id.is_not(None))
    if since is not None:
        q = q.where(Reading.measured_at >= since)
    if until is not None:
        q = q.where(Reading.measured_at < until)
    readings = list(session.scalars(q.order_by(Reading.measured_at.desc(), Reading.id).limit(limit).offset(offset)))
    return _render(session, readings)


def get_reading(session: Session, organization_id: str, reading_id: str) -> ReadingOut:
    reading = session.scalar(
        select(Reading).where(Reading.id == reading_id, Reading.organization_id == organization_id)
    )
    if reading is None:
        raise NotFound("no such reading in this organization")
    return _render(session, [reading])[0]


def _render(session: Session, readings: list[Reading]) -> list[ReadingOut]:
    if not readings:
        return []
    ids = [r.id for r in readings]
    measurements: dict[str, list[Measurement]] = defaultdict(list)
    for m in session.scalars(select(Measurement).where(Measurement.reading_id.in_(ids)).order_by(Measurement.kind)):
        measurements[m.reading_id].append(m)
    entries = {e.measurement_id: e for e in session.scalars(select(OutboxEntry).where(OutboxEntry.reading_id.in_(ids)))}
    serials = dict(
        session.execute(select(Device.id, Device.serial).where(Device.id.in_({r.device_id for r in readings}))).all()
    )
    return [
        ReadingOut.of(
            r,
            serials.get(r.device_id),
            [MeasurementOut.of(m, entries.get(m.id)) for m in measurements[r.id]],
        )
        for r in readings
    ]
