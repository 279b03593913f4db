"""``vitalbridge billing …`` against the test's database: enroll, log time, report, close, recompute."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.billing.support import daily, make_billing_world
from tests.readings_support import use_hub_database
from vitalbridge.cli import app
from vitalbridge.runtime import Hub

NY = "America/New_York"


def test_rules_lists_both_years() -> None:
    out = CliRunner().invoke(app, ["billing", "rules"])
    assert out.exit_code == 0, out.output
    cy2025, cy2026 = out.output.split("CY2026")
    assert "99454" in cy2025
    assert "99445" not in cy2025
    assert "99470" not in cy2025
    assert "99445" in cy2026
    assert "99470" in cy2026


def test_enroll_log_report_close_recompute(hub: Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_hub_database(hub, monkeypatch)
    world = make_billing_world(hub, "CLI Billing Org")
    patient = world.add_patient()
    runner = CliRunner()
    episode = {
        "patient_id": patient,
        "time_zone": NY,
        "ordering_practitioner_id": world.physician_id,
        "condition_code": "E11.9",
        "consent": {"at": "2026-10-01T10:00:00-04:00", "modality": "written", "recorded_by": "RN Lee"},
        "setup": {"on": "2026-10-01", "staff": "RN Lee"},
        "billing_practitioner_id": world.physician_id,
        "started_on": "2026-10-01",
    }
    (tmp_path / "episode.json").write_text(json.dumps(episode))
    out = runner.invoke(app, ["billing", "enroll", "--org", world.org_id, "--file", str(tmp_path / "episode.json")])
    assert out.exit_code == 0, out.output
    # A second, overlapping episode is refused with the reason, exit 1.
    again = runner.invoke(app, ["billing", "enroll", "--org", world.org_id, "--file", str(tmp_path / "episode.json")])
    assert again.exit_code == 1
    assert "one episode at a time" in again.output
    # A malformed file names the field, not the value.
    (tmp_path / "bad.json").write_text(json.dumps({**episode, "time_zone": "Nowhere/Quuxville"}))
    bad = runner.invoke(app, ["billing", "enroll", "--org", world.org_id, "--file", str(tmp_path / "bad.json")])
    assert bad.exit_code == 2
    assert "time_zone" in bad.output
    assert "Quuxville" not in bad.output
    for at in daily(NY, date(2026, 10, 1), 16):
        world.reading(patient, at)
    episode_id = out.stdout.strip()
    out = runner.invoke(
        app, ["billing", "periods", "--org", world.org_id, episode_id, "--as-of", "2026-11-05T00:00:00+00:00"]
    )
    assert out.exit_code == 0, out.output
    assert [(p["days"], p["code"]) for p in json.loads(out.stdout)] == [(16, "99454"), (0, None)]
    change = ["billing", "change-practitioner", "--org", world.org_id, episode_id, "--practitioner"]
    assert runner.invoke(app, [*change, world.provider_id]).exit_code == 0
    refused = runner.invoke(app, [*change, "no-such-provider"])
    assert refused.exit_code == 1
    assert "no such provider" in refused.output
    entry = {
        "patient_id": patient,
        "staff": "RN Lee",
        "credential": "clinical_staff",
        "started_at": "2026-10-05T10:00:00-04:00",
        "minutes": 22,
        "activity": "communication",
        "interactive": True,
        "modality": "video",
    }
    (tmp_path / "entry.json").write_text(json.dumps(entry))
    out = runner.invoke(app, ["billing", "log-time", "--org", world.org_id, "--file", str(tmp_path / "entry.json")])
    assert out.exit_code == 0, out.output
    args = ["billing", "report", "--org", world.org_id, "--practice", "BILLPRAC", "--month", "2026-10"]
    out = runner.invoke(app, [*args, "--format", "csv"])
    assert out.exit_code == 0, out.output
    lines = list(csv.DictReader(io.StringIO(out.stdout)))
    assert sorted(line["code"] for line in lines) == ["99453", "99454", "99457"]
    out = runner.invoke(app, [*args, "--format", "json"])
    doc = json.loads(out.stdout)
    assert doc["status"] == "open"
    assert doc["report"]["totals"] == {"99453": 1, "99454": 1, "99457": 1}
    assert runner.invoke(app, ["billing", "report", *args[2:], "--month", "2026-1"]).exit_code == 2
    close = ["billing", "close", "--org", world.org_id, "--practice", "BILLPRAC", "--month", "2026-10"]
    assert runner.invoke(app, close).exit_code == 0
    world.reading(patient, datetime(2026, 10, 28, 15, tzinfo=UTC) + timedelta(minutes=1))
    out = runner.invoke(app, ["billing", "recompute", "--org", world.org_id])
    assert out.exit_code == 0, out.output
    assert "1 amended" in out.output
    doc = json.loads(runner.invoke(app, [*args, "--format", "json"]).stdout)
    assert doc["status"] == "closed"
    assert [v["kind"] for v in doc["versions"]] == ["closed", "amendment"]
    v1 = doc["report"]["patients"][0]["device_periods"][0]["days"]
    amended = json.loads(runner.invoke(app, [*args, "--format", "json", "--version", "2"]).stdout)
    assert (v1, amended["report"]["patients"][0]["device_periods"][0]["days"]) == (16, 17)
