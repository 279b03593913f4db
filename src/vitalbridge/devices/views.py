"""``/api/v1/devices/``, ``/api/v1/readings/``, ``/api/v1/quarantine/`` (SPEC §5).

Everything is scoped to the caller's organization: another tenant's device, reading, patient or
quarantined payload answers 404 exactly like one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from vitalbridge.api.actors import actor_of
from vitalbridge.api.deps import HubDep, SessionDep, require_role
from vitalbridge.api.types import MAX_OFFSET
from vitalbridge.db.base import utcnow
from vitalbridge.devices import quarantine, receive, registry
from vitalbridge.devices.listing import get_reading, list_readings
from vitalbridge.devices.models import QuarantineReason, QuarantineStatus
from vitalbridge.devices.schemas import (
    DeviceAssignIn,
    DeviceAssignOut,
    DeviceOut,
    QuarantineDetailOut,
    QuarantineOut,
    ReadingOut,
    ReviewIn,
)
from vitalbridge.tenancy.models import Role
from vitalbridge.tenancy.service import Principal

devices_router = APIRouter(prefix="/api/v1/devices", tags=["devices"])
readings_router = APIRouter(prefix="/api/v1/readings", tags=["readings"])
quarantine_router = APIRouter(prefix="/api/v1/quarantine", tags=["quarantine"])

CareDep = Annotated[Principal, Depends(require_role(Role.clinician, Role.integration))]
ClinicianDep = Annotated[Principal, Depends(require_role(Role.clinician))]
IntegrationDep = Annotated[Principal, Depends(require_role(Role.integration))]


@devices_router.post("/", response_model=DeviceAssignOut)
def assign_device(body: DeviceAssignIn, session: SessionDep, hub: HubDep, principal: CareDep) -> DeviceAssignOut:
    """Assign a device to a patient, move it to another, or unassign it (``patient_id: null``).

    Readings the device sent while unassigned go to the newly assigned patient and their
    outbox rows are released (docs/readings.md, "Devices").
    """
    now = utcnow()
    result = registry.assign_device(
        session,
        organization_id=principal.organization_id,
        serial=body.device_id,
        patient_id=body.patient_id,
        actor=actor_of(principal),
        now=now,
        model=body.model,
        manufacturer=body.manufacturer,
        triage=hub.settings.triage_inline,
    )
    out = DeviceOut.of(result.device).model_dump()
    return DeviceAssignOut(
        **out, previous_patient_id=result.previous_patient_id, released_readings=len(result.released_readings)
    )


@devices_router.get("/", response_model=list[DeviceOut])
def list_devices(
    session: SessionDep,
    principal: CareDep,
    patient: Annotated[str | None, Query(description="hub patient id")] = None,
    unassigned: bool | None = None,
) -> list[DeviceOut]:
    rows = registry.list_devices(session, principal.organization_id, patient_id=patient, unassigned=unassigned)
    return [DeviceOut.of(d) for d in rows]


@devices_router.get("/{device}", response_model=DeviceOut)
def get_device(device: str, session: SessionDep, principal: CareDep) -> DeviceOut:
    """By hub id or by the device's own id (IMEI/serial)."""
    return DeviceOut.of(registry.get_device(session, principal.organization_id, device))


@readings_router.get("/", response_model=list[ReadingOut])
def readings(
    session: SessionDep,
    principal: CareDep,
    patient: Annotated[str | None, Query(description="hub patient id")] = None,
    device: Annotated[str | None, Query(description="hub device id or IMEI/serial")] = None,
    unassigned: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[ReadingOut]:
    """Newest first, each measurement with its delivery status."""
    return list_readings(
        session,
        principal.organization_id,
        patient_id=patient,
        device=device,
        unassigned=unassigned,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )


@readings_router.get("/{reading_id}", response_model=ReadingOut)
def reading(reading_id: str, session: SessionDep, principal: CareDep) -> ReadingOut:
    return get_reading(session, principal.organization_id, reading_id)


@quarantine_router.get("/", response_model=list[QuarantineOut])
def list_quarantine(
    session: SessionDep,
    principal: IntegrationDep,
    status: QuarantineStatus | None = QuarantineStatus.open,
    reason: QuarantineReason | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[QuarantineOut]:
    items = quarantine.list_items(
        session, principal.organization_id, status=status, reason=reason, limit=limit, offset=offset
    )
    return [QuarantineOut.of(q) for q in items]


@quarantine_router.get("/{item_id}", response_model=QuarantineDetailOut)
def get_quarantined(item_id: str, session: SessionDep, principal: IntegrationDep) -> QuarantineDetailOut:
    """One payload with its raw body as received."""
    return QuarantineDetailOut.detail(quarantine.get(session, principal.organization_id, item_id))


@quarantine_router.post("/{item_id}/dismiss", response_model=QuarantineOut)
def dismiss(item_id: str, body: ReviewIn, session: SessionDep, principal: IntegrationDep) -> QuarantineOut:
    item = quarantine.dismiss(
        session, principal.organization_id, item_id, actor=actor_of(principal), now=utcnow(), note=body.note
    )
    return QuarantineOut.of(item)


@quarantine_router.post("/{item_id}/reprocess", response_model=QuarantineOut)
def reprocess(item_id: str, hub: HubDep, principal: IntegrationDep) -> QuarantineOut:
    """Run the stored body through the current checks again (after a fix in the hub or its rules)."""
    receive.reprocess(hub, principal.organization_id, item_id, actor=actor_of(principal))
    with hub.sessions() as session:
        return QuarantineOut.of(quarantine.get(session, principal.organization_id, item_id))
