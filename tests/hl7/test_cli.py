"""``vitalbridge hl7 …`` against real listeners. ``send`` and ``listen`` run as real subprocesses (the
in-test listener's logs would otherwise share their stdout); the database commands run in-process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.hl7.results_peer import ResultsInterface
from tests.hl7.support import DATA, LoopThread, ack_fields, listener, make_site
from vitalbridge.cli import app
from vitalbridge.hl7v2.mllp.client import MllpClient
from vitalbridge.runtime import Hub
from vitalbridge.settings import Settings

VB = [sys.executable, "-c", "from vitalbridge.cli import main; main()"]


def env_for(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VB_", "ECW_"))}
    env.update(
        {
            "VB_DATABASE_URL": settings.effective_database_url,
            "VB_DATA_DIR": str(settings.data_dir),
            "VB_SECRET_KEY": "cli-test-key",
        }
    )
    return env


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def send(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VB, "hl7", "send", *args], capture_output=True, text=True, timeout=120, check=False)


def vb(args: list[str], env: dict[str, str] | None = None) -> Run:
    result = CliRunner().invoke(app, args, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


def test_send_file_prints_each_ack(hub: Hub) -> None:
    make_site(hub)
    with listener(hub) as srv:
        ok = send([str(DATA / "adt_v2.5.1.hl7"), "--port", str(srv.port)])
        bad = send([str(DATA / "malformed" / "missing_pid3.hl7"), "--port", str(srv.port)])
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [f"{n}\tN251-000{n}\tAA" for n in range(1, 6)]
    assert bad.returncode == 1
    assert bad.stdout.strip() == "1\tM-0001\tAE\tPID-3 patient identifier list is required"


def test_send_reports_a_missing_ack_and_stops(tmp_path: Path) -> None:
    two = tmp_path / "two.hl7"
    two.write_bytes((DATA / "adt_v2.3.hl7").read_bytes())
    with LoopThread(ResultsInterface(known_mrns=set(), stall=True)) as srv:
        proc = send([str(two), "--port", str(srv.port), "--timeout", "0.5"])
    assert proc.returncode == 1
    assert proc.stdout.startswith("1\tN23-0001\t-\tno ACK from 127.0.0.1:")
    assert "4 message(s) not sent" in proc.stderr


def test_send_refuses_an_empty_file_and_an_unreachable_peer(tmp_path: Path) -> None:
    empty = tmp_path / "empty.hl7"
    empty.write_text("\n\n")
    assert send([str(empty)]).returncode == 2
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    proc = send([str(DATA / "adt_a04_utf8.hl7"), "--port", str(port)])
    assert proc.returncode == 1
    assert "cannot connect" in proc.stdout


def test_configure_messages_and_show(hub: Hub, settings: Settings) -> None:
    site = make_site(hub, facility=None)
    env = env_for(settings)
    conf = vb(["hl7", "configure", "--org", "Org A", "--practice", "P1", "--sending-facility", "NORTHCLINIC"], env)
    assert conf.returncode == 0, conf.stderr
    assert "facility=NORTHCLINIC" in conf.stdout
    other = make_site(hub, "Org B", facility=None, code="P2")
    clash = vb(
        ["hl7", "configure", "--org", other.org_id, "--practice", "P2", "--sending-facility", "NORTHCLINIC"], env
    )
    assert clash.returncode == 1
    assert "already mapped" in clash.stderr
    with listener(hub) as srv:
        assert send([str(DATA / "adt_a04_utf8.hl7"), "--port", str(srv.port)]).returncode == 0
        send([str(DATA / "malformed" / "unknown_facility.hl7"), "--port", str(srv.port)])
    listed = vb(["hl7", "messages"], env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    assert "\tADT^A04\tM-0009\trejected\tAR\tSOUTHCLINIC\t" in lines[0]
    unrouted = vb(["hl7", "messages", "--unrouted"], env).stdout.splitlines()
    assert len(unrouted) == 1
    assert "M-0009" in unrouted[0]
    accepted = vb(["hl7", "messages", "--org", site.org_id, "--status", "accepted"], env).stdout.splitlines()
    assert len(accepted) == 1
    assert "N-UTF8-1" in accepted[0]
    shown = vb(["hl7", "show", accepted[0].split("\t")[0], "--raw"], env)
    assert shown.returncode == 0
    assert "Łukasiewicz^Zoë" in shown.stdout
    assert vb(["hl7", "messages", "--status", "nope"], env).returncode == 2


def test_listen_serves_until_interrupted(hub: Hub, settings: Settings) -> None:
    make_site(hub)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    proc = subprocess.Popen(
        [*VB, "hl7", "listen", "--port", str(port)],
        env=env_for(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"listener did not start: {proc.communicate(timeout=5)}")
                time.sleep(0.1)

        async def send() -> bytes:
            async with MllpClient("127.0.0.1", port) as client:
                return await client.request((DATA / "adt_a04_utf8.hl7").read_bytes(), timeout=10)

        assert ack_fields(asyncio.run(send()))["MSA"][1] == "AA"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"MLLP listener on 127.0.0.1:{port}" in out
