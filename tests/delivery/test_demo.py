"""``vitalbridge demo`` as a user runs it (SPEC §7): 40 readings through the webhook with 30 % of
EHR requests failing transiently, against the sandbox's default ``ecw`` profile; the JSON summary
must show every Observation in the EHR once, and the EHR calls per Observation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_delivers_every_reading_exactly_once_through_faults() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VB_")}
    done = subprocess.run(
        [sys.executable, "-m", "vitalbridge", "demo", "--readings", "40", "--fault-rate", "0.3", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["sent"] == 40
    # BP and SpO2 readings carry a pulse: 10 of each make 20 extra heart-rate Observations.
    assert summary["observations_expected"] == 60
    assert summary["delivered"] == 60
    assert summary["observations_found"] == 60
    assert summary["dead"] == 0
    assert summary["duplicates"] == 0
    assert summary["ok"] is True
    assert summary["latency_p50_s"] <= summary["latency_p95_s"]
    # The demo's sandbox behaves like eCW by default, and the summary says what each Observation cost.
    assert summary["profile"] == "ecw"
    assert summary["ehr_calls"]["create"] >= 60
    assert summary["calls_per_observation"] >= 1.0
    assert "demo: delivering 60/60 (100%)" in done.stderr
