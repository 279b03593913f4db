"""Device registry (SPEC §5): which patient a device's readings belong to, and when.

Attribution rule (docs/readings.md, "Devices"): each device has a current period starting at
``period_start`` and attributed to ``patient_id`` (None = unassigned, readings held). Assigning
a patient to an unassigned device *extends* the current period to them, so every reading held
while the device had nobody goes to the newly assigned patient. Reassigning or unassigning
*closes* the period into ``device_assignments``; a reading that arrives late but was measured
before the change is attributed from that history to the patient who had the device then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.delivery.models import BlockedReason, OutboxEntry, OutboxStatus
from vitalbridge.delivery.outbox import route, target_of
from vitalbridge.devices.models import Device, DeviceAssignment, Measurement, Reading
from vitalbridge.devices.readings import DeviceRef
from vitalbridge.errors import NotFound
from vitalbridge.patients.models import Patient, PatientStatus
from vitalbridge.tenancy.models import Practice
from vitalbridge.triage.evaluate import measurements_of, triage_safely

# An HL7 A40 / EHR merge can chain; more hops than this is a data error, not a real history.
_MAX_MERGE_HOPS = 5


def devices_for(session: Session, organization_id: str, refs: list[DeviceRef]) -> dict[str, Device]:
    """The registry rows for these serials, creating unknown ones as unassigned (never dropping a reading)."""
    serials = sorted({r.serial for r in refs})
    # FOR SHARE: an assignment of one of these devices (FOR UPDATE) waits for this transaction to
    # commit and then sees its held readings, or this one waits and sees the new patient.
    found = {
        d.serial: d
        for d in session.scalars(
            select(Device)
            .where(Device.organization_id == organization_id, Device.serial.in_(serials))
            .with_for_update(read=True)
        )
    }
    for ref in refs:
        if ref.serial in found:
            device = found[ref.serial]
            # Fill in what the gateway tells us about the hardware, never overwrite what an operator set.
            if device.model is None and ref.model:
                device.model = ref.model
            if device.manufacturer is None and ref.manufacturer:
                device.manufacturer = ref.manufacturer
            continue
        device = Device(
            organization_id=organization_id, serial=ref.serial, model=ref.model, manufacturer=ref.manufacturer
        )
        try:
            # A concurrent first reading from the same new device may insert it first.
            with session.begin_nested():
                session.add(device)
        except IntegrityError:
            existing = session.scalar(
                select(Device).where(Device.organization_id == organization_id, Device.serial == ref.serial)
            )
            assert existing is not None
            device = existing
        found[ref.serial] = device
    return found


def attributed_patient_id(session: Session, device: Device, measured_at: datetime) -> str | None:
    if device.period_start is None or measured_at >= device.period_start:
        return device.patient_id
    # Measured before the last change: whoever had the device then.
    return session.scalar(
        select(DeviceAssignment.patient_id)
        .where(
            DeviceAssignment.device_id == device.id,
            DeviceAssignment.ends_at > measured_at,
            or_(DeviceAssignment.starts_at.is_(None), DeviceAssignment.starts_at <= measured_at),
        )
        .order_by(DeviceAssignment.ends_at)
        .limit(1)
    )


def patients_with_practices(session: Session, ids: set[str]) -> dict[str, tuple[Patient, Practice]]:
    """Patients by id with their practice; a merged patient resolves to the one it was merged into."""
    out: dict[str, tuple[Patient, Practice]] = {}
    pending = {i: i for i in ids}  # requested id → id to look up now
    for _hop in range(_MAX_MERGE_HOPS):
        if not pending:
            break
        rows = session.execute(
            select(Patient, Practice)
            .join(Practice, Practice.id == Patient.practice_id)
            .where(Patient.id.in_(set(pending.values())))
        ).all()
        by_id = {p.id: (p, pr) for p, pr in rows}
        nxt: dict[str, str] = {}
        for requested, current in pending.items():
            hit = by_id.get(current)
            if hit is None:
                continue
            patient, _ = hit
            if patient.status is PatientStatus.merged and patient.merged_into_id:
                nxt[requested] = patient.merged_into_id
            else:
                out[requested] = hit
        pending = nxt
    return out


def get_device(session: Session, organization_id: str, ref: str) -> Device:
    device = session.scalar(
        select(Device).where(Device.organization_id == organization_id, (Device.id == ref) | (Device.serial == ref))
    )
    if device is None:
        raise NotFound("no such device in this organization")
    return device


def list_devices(
    session: Session, organization_id: str, *, patient_id: str | None = None, unassigned: bool | None = None
) -> list[Device]:
    q = select(Device).where(Device.organization_id == organization_id)
    if patient_id is not None:
        q = q.where(Device.patient_id == patient_id)
    if unassigned is True:
        q = q.where(Device.patient_id.is_(None))
    elif unassigned is False:
        q = q.where(Device.patient_id.is_not(None))
    return list(session.scalars(q.order_by(Device.created_at, Device.serial)))


@dataclass(frozen=True)
class AssignmentResult:
    device: Device
    previous_patient_id: str | None
    released_readings: list[Reading]


def assign_device(
    session: Session,
    *,
    organization_id: str,
    serial: str,
    patient_id: str | None,
    actor: Actor | str,
    now: datetime,
    model: str | None = None,
    manufacturer: str | None = None,
    triage: bool = True,
) -> AssignmentResult:
    """Assign, reassign or (``patient_id=None``) unassign a device, releasing readings it held.

    Released readings are triaged here (``triage``; else the sweeper does it), before the audit
    entry so alert rows are locked before the audit chain.
    """
    patient: Patient | None = None
    if patient_id is not None:
        patient = session.scalar(
            select(Patient).where(Patient.id == patient_id, Patient.organization_id == organization_id)
        )
        if patient is None:
            raise NotFound("no such patient in this organization")
    # Lock the row so a concurrent ingest of this device's readings sees the assignment before
    # or after, never half of it (PostgreSQL; SQLite writers are serial anyway).
    device = session.scalar(
        select(Device).where(Device.organization_id == organization_id, Device.serial == serial).with_for_update()
    )
    if device is None:
        device = devices_for(session, organization_id, [DeviceRef(serial, model, manufacturer)])[serial]
    if model:
        device.model = model
    if manufacturer:
        device.manufacturer = manufacturer
    previous = device.patient_id
    if previous == patient_id:
        return AssignmentResult(device, previous, [])
    if previous is not None:
        session.add(
            DeviceAssignment(
                device_id=device.id,
                patient_id=previous,
                starts_at=device.period_start,
                ends_at=now,
                assigned_at=device.assigned_at,
            )
        )
        device.period_start = now
    device.patient_id = patient_id
    device.assigned_at = now if patient_id else None

    released: list[Reading] = []
    if patient is not None:
        released = _release_held(session, device, patient, now)
    if released and triage:
        triage_safely(session, released, measurements_of(session, released), now=now)
    action = "device.unassigned" if patient_id is None else ("device.reassigned" if previous else "device.assigned")
    record(
        session,
        action=action,
        outcome=Outcome.success,
        actor=actor,
        organization_id=organization_id,
        practice_id=patient.practice_id if patient else None,
        resource_type="Device",
        resource_ids=[device.id],
        detail={
            "patient_id": patient_id,
            "previous_patient_id": previous,
            "released_readings": len(released),
        },
    )
    return AssignmentResult(device, previous, released)


def _release_held(session: Session, device: Device, patient: Patient, now: datetime) -> list[Reading]:
    readings = list(
        session.scalars(
            select(Reading)
            .where(Reading.device_id == device.id, Reading.patient_id.is_(None))
            .order_by(Reading.measured_at)
        )
    )
    if not readings:
        return []
    resolved = patients_with_practices(session, {patient.id})
    owner, practice = resolved.get(patient.id, (patient, session.get(Practice, patient.practice_id)))
    target = target_of(owner, practice)
    ids = [r.id for r in readings]
    for r in readings:
        r.patient_id = owner.id
        r.unassigned = False
    for m in session.scalars(select(Measurement).where(Measurement.reading_id.in_(ids))):
        m.patient_id = owner.id
    entries = session.scalars(
        select(OutboxEntry).where(
            OutboxEntry.reading_id.in_(ids),
            and_(
                OutboxEntry.status == OutboxStatus.blocked,
                OutboxEntry.blocked_reason == BlockedReason.device_unassigned,
            ),
        )
    ).all()
    for entry in entries:
        errors = route(entry, entry.resource, target, now)
        if errors:
            entry.status = OutboxStatus.dead
            entry.last_error = "; ".join(errors)[:1000]
    return readings
