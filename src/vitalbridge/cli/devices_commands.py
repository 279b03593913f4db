"""``vitalbridge devices``: assign home devices to patients (the CLI face of ``/api/v1/devices/``).

Assignment goes through ``devices.registry.assign_device`` like the API: readings a device sent
while nobody had it are released to the patient, and the change is audited with the operator.
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.cli.common import hub_session, operator
from vitalbridge.db.base import utcnow
from vitalbridge.devices import registry
from vitalbridge.devices.models import Device
from vitalbridge.errors import Conflict, NotFound
from vitalbridge.patients.models import Patient
from vitalbridge.tenancy import service as tenancy

devices = typer.Typer(help="Home devices: assign, unassign, list.", no_args_is_help=True)

OrgOpt = Annotated[str, typer.Option("--org", help="Organization id or name.")]
DeviceArg = Annotated[str, typer.Argument(help="The device's id as the gateway reports it (IMEI or serial).")]


def _patient_id(session: Session, organization_id: str, ref: str) -> str:
    """A hub patient id, or the patient's EHR id (what `vitalbridge patients import` takes)."""
    patient = session.scalar(select(Patient).where(Patient.organization_id == organization_id, Patient.id == ref))
    if patient is not None:
        return patient.id
    matches = list(
        session.scalars(select(Patient).where(Patient.organization_id == organization_id, Patient.ehr_id == ref))
    )
    if not matches:
        raise NotFound("no patient with that hub id or EHR id in this organization (`vitalbridge patients import`)")
    if len(matches) > 1:
        raise Conflict("that EHR id names patients of several practices: give the hub patient id")
    return matches[0].id


def _show(device: Device) -> str:
    return f"{device.serial}\t{device.patient_id or '-'}\t{device.model or '-'}\t{device.id}"


@devices.command("assign")
def assign(
    device: DeviceArg,
    org: OrgOpt,
    patient: Annotated[str, typer.Option(help="Hub patient id, or the patient's EHR id.")],
    model: Annotated[str | None, typer.Option(help="Device model, e.g. BP800.")] = None,
    manufacturer: Annotated[str | None, typer.Option(help="Device manufacturer.")] = None,
) -> None:
    """Assign a device to a patient (or move it to another). Readings it sent while unassigned go to
    this patient. Prints `device<TAB>patient<TAB>model<TAB>hub id`."""
    with hub_session() as (hub, session):
        organization = tenancy.get_organization(session, org)
        result = registry.assign_device(
            session,
            organization_id=organization.id,
            serial=device,
            patient_id=_patient_id(session, organization.id, patient),
            actor=operator(),
            now=utcnow(),
            model=model,
            manufacturer=manufacturer,
            triage=hub.settings.triage_inline,
        )
        line = _show(result.device)
        released = len(result.released_readings)
    typer.echo(line)
    if released:
        typer.echo(f"released {released} reading(s) the device sent while unassigned", err=True)


@devices.command("unassign")
def unassign(device: DeviceArg, org: OrgOpt) -> None:
    """Take a device from its patient; later readings are held until it is assigned again."""
    with hub_session() as (_hub, session):
        organization = tenancy.get_organization(session, org)
        registry.get_device(session, organization.id, device)
        result = registry.assign_device(
            session, organization_id=organization.id, serial=device, patient_id=None, actor=operator(), now=utcnow()
        )
        line = _show(result.device)
    typer.echo(line)


@devices.command("list")
def list_(
    org: OrgOpt,
    patient: Annotated[str | None, typer.Option(help="Only this patient's devices (hub or EHR id).")] = None,
    unassigned: Annotated[
        bool | None, typer.Option("--unassigned/--assigned", help="Only devices nobody has, or only assigned ones.")
    ] = None,
) -> None:
    """List devices as `device<TAB>patient<TAB>model<TAB>hub id` (patient `-`: unassigned)."""
    with hub_session() as (_hub, session):
        organization = tenancy.get_organization(session, org)
        patient_id = _patient_id(session, organization.id, patient) if patient is not None else None
        rows = [
            _show(d)
            for d in registry.list_devices(session, organization.id, patient_id=patient_id, unassigned=unassigned)
        ]
    for row in rows:
        typer.echo(row)


def register(app: typer.Typer) -> None:
    app.add_typer(devices, name="devices")
