"""``make run`` (``vitalbridge up``) checks its ports before starting anything: a port in use,
or two servers given the same port, is one line naming the setting, not a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.test_cli_first_hour import base_env, free_port

VB = [sys.executable, "-m", "vitalbridge"]


@contextmanager
def listening(port: int) -> Iterator[None]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        yield


@pytest.mark.parametrize("busy", ["VB_PORT", "VB_SANDBOX_PORT", "VB_FAKE_FCM_PORT"])
def test_a_port_in_use_is_named(tmp_path: Path, busy: str) -> None:
    ports = {name: str(free_port()) for name in ("VB_PORT", "VB_SANDBOX_PORT", "VB_FAKE_FCM_PORT")}
    env = base_env(tmp_path, **ports)
    with listening(int(ports[busy])):
        proc = subprocess.run([*VB, "up"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert busy in lines[0]
    assert ports[busy] in lines[0]
    assert "Traceback" not in proc.stderr
    # Nothing was started or created.
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "same", [("VB_PORT", "VB_SANDBOX_PORT"), ("VB_SANDBOX_PORT", "VB_FAKE_FCM_PORT"), ("VB_PORT", "VB_FAKE_FCM_PORT")]
)
def test_two_servers_on_one_port_are_refused(tmp_path: Path, same: tuple[str, str]) -> None:
    ports = {name: str(free_port()) for name in ("VB_PORT", "VB_SANDBOX_PORT", "VB_FAKE_FCM_PORT")}
    ports[same[1]] = ports[same[0]]
    proc = subprocess.run(
        [*VB, "up"], env=base_env(tmp_path, **ports), capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert same[0] in lines[0]
    assert same[1] in lines[0]
    assert "own port" in lines[0]


@pytest.mark.parametrize(("command", "setting"), [("serve", "VB_PORT"), ("sandbox", "VB_SANDBOX_PORT")])
def test_servers_name_a_port_in_use(tmp_path: Path, command: str, setting: str) -> None:
    port = free_port()
    with listening(port):
        proc = subprocess.run(
            [*VB, command],
            env=base_env(tmp_path, **{setting: str(port)}),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"port {port}" in lines[0]
    assert setting in lines[0]
