"""Long CLI jobs show elapsed time, rate, ETA and fault/retry counts; CLI logs default to warnings."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli_first_hour import base_env
from vitalbridge.cli.progress import JobProgress, Snapshot

VB = [sys.executable, "-m", "vitalbridge"]


@pytest.mark.parametrize(
    ("snapshot", "line"),
    [
        (
            Snapshot("demo: sending", 0, 40, 0.0),
            "demo: sending 0/40 (0%)  elapsed 0s  rate -  eta ?  faults 0  retries 0",
        ),
        (
            Snapshot("demo: delivering", 30, 60, 10.0, faults=4, retries=2),
            "demo: delivering 30/60 (50%)  elapsed 10s  rate 3.0/s  eta 10s  faults 4  retries 2",
        ),
        (
            Snapshot("demo: delivering", 10, 1000, 65.0),
            "demo: delivering 10/1000 (1%)  elapsed 1m05s  rate 0.2/s  eta 107m15s  faults 0  retries 0",
        ),
        (Snapshot("x", 60, 60, 20.0, 1, 1), "x 60/60 (100%)  elapsed 20s  rate 3.0/s  eta 0s  faults 1  retries 1"),
    ],
)
def test_snapshot_line(snapshot: Snapshot, line: str) -> None:
    assert snapshot.line() == line


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_come_every_interval_and_at_the_end() -> None:
    out, clock = io.StringIO(), Clock()
    with JobProgress("job", stream=out, interval_s=5, terminal=False, clock=clock) as progress:
        progress.phase("sending", 10)
        for done in range(1, 11):
            clock.now += 1
            progress.update(done, faults=done // 4)
    lines = out.getvalue().splitlines()
    assert lines == [
        "job: sending 0/10 (0%)  elapsed 0s  rate -  eta ?  faults 0  retries 0",
        "job: sending 5/10 (50%)  elapsed 5s  rate 1.0/s  eta 5s  faults 1  retries 0",
        "job: sending 10/10 (100%)  elapsed 10s  rate 1.0/s  eta 0s  faults 2  retries 0",
    ]
    assert "\x1b" not in out.getvalue()


def test_a_terminal_gets_a_progress_bar() -> None:
    out = io.StringIO()
    with JobProgress("job", stream=out, terminal=True) as progress:
        progress.phase("delivering", 8)
        progress.update(6, faults=3, retries=2)
    text = out.getvalue()
    assert "job: delivering" in text
    assert "6/8" in text
    assert "faults 3  retries 2" in text
    assert "━" in text  # the bar


def test_demo_progress_is_not_buried_in_logs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*VB, "demo", "--readings", "8", "--progress-every", "0"],
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert [line for line in lines if line.startswith("{")] == [], "log lines among the progress"
    assert "demo: sending 8/8 (100%)" in proc.stderr
    # 8 readings, 4 of them with a pulse: 12 Observations.
    assert "demo: delivering 12/12 (100%)" in proc.stderr
    assert all(("eta" in line and "retries" in line) for line in lines if line.startswith("demo: delivering"))


@pytest.mark.parametrize(("level", "logged"), [(None, False), ("WARNING", False), ("INFO", True)])
def test_cli_logs_default_to_warnings(tmp_path: Path, level: str | None, logged: bool) -> None:
    env = base_env(tmp_path)
    if level is not None:
        env["VB_CLI_LOG_LEVEL"] = level
    proc = subprocess.run([*VB, "migrate"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    # Alembic logs each migration at INFO.
    assert any(line.startswith("{") for line in proc.stderr.splitlines()) is logged
