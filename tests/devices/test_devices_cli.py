"""`vitalbridge devices assign|unassign|list`: the CLI face of device assignment, per organization."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from tests.readings_support import add_patient, make_world
from tests.test_cli import cli_env
from vitalbridge.audit.models import AuditEntry
from vitalbridge.devices.models import Device
from vitalbridge.runtime import Hub

VB = [sys.executable, "-m", "vitalbridge"]


def vb(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VB, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_assign_list_unassign(hub: Hub, db_url: str, tmp_path: Path) -> None:
    world = make_world(hub, "Clinic A")
    by_hub_id = add_patient(hub, world, ehr_id="ehr-1")
    by_ehr_id = add_patient(hub, world, ehr_id="ehr-2")
    env = cli_env(db_url, tmp_path)
    env["VB_SECRET_KEY"] = hub.settings.secret_key.get_secret_value() if hub.settings.secret_key else ""

    first = vb(["devices", "assign", "BP-1", "--org", "Clinic A", "--patient", by_hub_id, "--model", "BP800"], env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split("\t")[:3] == ["BP-1", by_hub_id, "BP800"]
    assert "wrote to" in first.stderr
    # The patient's EHR id works too; a second device stays unassigned.
    second = vb(["devices", "assign", "SPO2-7", "--org", world.org_id, "--patient", "ehr-2"], env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split("\t")[1] == by_ehr_id
    assert vb(["devices", "unassign", "SPO2-7", "--org", "Clinic A"], env).stdout.split("\t")[1] == "-"

    listed = vb(["devices", "list", "--org", "Clinic A"], env).stdout.splitlines()
    assert [line.split("\t")[:2] for line in listed] == [["BP-1", by_hub_id], ["SPO2-7", "-"]]
    unassigned = vb(["devices", "list", "--org", "Clinic A", "--unassigned"], env).stdout.splitlines()
    assert [line.split("\t")[0] for line in unassigned] == ["SPO2-7"]
    mine = vb(["devices", "list", "--org", "Clinic A", "--patient", "ehr-1"], env).stdout.splitlines()
    assert [line.split("\t")[0] for line in mine] == ["BP-1"]

    with hub.sessions() as session:
        device = session.scalar(select(Device).where(Device.serial == "BP-1"))
        assert device is not None
        assert device.patient_id == by_hub_id
        actions = list(session.scalars(select(AuditEntry.action).where(AuditEntry.organization_id == world.org_id)))
    assert actions.count("device.assigned") == 2
    assert "device.unassigned" in actions


def test_another_organizations_patient_and_device_are_not_found(hub: Hub, db_url: str, tmp_path: Path) -> None:
    a = make_world(hub, "Clinic A")
    b = make_world(hub, "Clinic B")
    patient_a = add_patient(hub, a, ehr_id="ehr-a")
    add_patient(hub, b, ehr_id="ehr-b")
    env = cli_env(db_url, tmp_path)
    env["VB_SECRET_KEY"] = hub.settings.secret_key.get_secret_value() if hub.settings.secret_key else ""
    assert vb(["devices", "assign", "BP-1", "--org", "Clinic A", "--patient", patient_a], env).returncode == 0

    # Clinic B names Clinic A's patient (hub id and EHR id): not found, nothing assigned.
    for ref in (patient_a, "ehr-a"):
        refused = vb(["devices", "assign", "BP-9", "--org", "Clinic B", "--patient", ref], env)
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines() == [
            "error: no patient with that hub id or EHR id in this organization (`vitalbridge patients import`)"
        ]
    # Clinic B cannot see or unassign Clinic A's device.
    assert vb(["devices", "list", "--org", "Clinic B"], env).stdout == ""
    taken = vb(["devices", "unassign", "BP-1", "--org", "Clinic B"], env)
    assert taken.returncode == 1
    assert "no such device" in taken.stderr
    assert "BP-1" not in taken.stderr  # the caller's identifier is never echoed
    with hub.sessions() as session:
        assert session.scalar(select(Device.patient_id).where(Device.serial == "BP-1")) == patient_a
        assert session.scalar(select(Device).where(Device.serial == "BP-9")) is None
