"""The first hour with the CLI: serve honours VB_HOST/VB_PORT, refuses an unmigrated database,
and every failure is one line that says what to do (run as real subprocesses)."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import api_client
from vitalbridge.db.migrate import upgrade
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.settings import Settings

VB = [sys.executable, "-m", "vitalbridge"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VB_", "ECW_"))}
    env.update({"VB_DATA_DIR": str(tmp_path / "data"), "VB_SECRET_KEY": "first-hour-key"})
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VB, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def wait_ready(url: str, proc: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, f"serve exited {proc.returncode}"
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "hub did not start"
            time.sleep(0.2)


def serving(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([*VB, "serve", *args], env=env, text=True, stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.communicate(timeout=20)


# --- item 14: settings are the defaults of serve's options -----------------------------------


@pytest.mark.parametrize(
    ("host", "use_option"),
    [("127.0.0.1", False), ("127.0.0.2", False), ("127.0.0.1", True)],
    ids=["VB_PORT", "VB_HOST+VB_PORT", "--port-beats-VB_PORT"],
)
def test_serve_binds_vb_host_and_vb_port(db_url: str, tmp_path: Path, host: str, use_option: bool) -> None:
    port = free_port(host)
    env = base_env(tmp_path, VB_DATABASE_URL=db_url, VB_HOST=host, VB_PORT=str(port))
    args: list[str] = []
    if use_option:
        # The option wins: VB_PORT names a port that is taken, so binding it would fail.
        option_port = free_port(host)
        with socket.socket() as blocker:
            blocker.bind((host, port))
            blocker.listen()
            proc = serving(["--port", str(option_port)], env)
            try:
                assert wait_ready(f"http://{host}:{option_port}/healthz", proc).json() == {"status": "ok"}
            finally:
                stop(proc)
        return
    proc = serving(args, env)
    try:
        assert wait_ready(f"http://{host}:{port}/healthz", proc).json() == {"status": "ok"}
        assert httpx.get(f"http://{host}:{port}/readyz").json()["schema"] == "current"
    finally:
        stop(proc)


# --- item 15: an unmigrated database is refused, /readyz checks the schema -------------------


def _empty_sqlite(tmp_path: Path) -> str:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    return f"sqlite:///{path}"


def _partial_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'partial.db'}"
    upgrade(url, "0005_readings")
    return url


@pytest.mark.parametrize("make_db", [_empty_sqlite, _partial_sqlite], ids=["no-tables", "partly-migrated"])
def test_serve_refuses_an_unmigrated_database(tmp_path: Path, make_db: object) -> None:
    url = make_db(tmp_path)  # type: ignore[operator]
    port = free_port()
    env = base_env(tmp_path, VB_DATABASE_URL=url, VB_PORT=str(port))
    proc = run(["serve"], env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "vitalbridge migrate" in lines[0]
    assert "--migrate" in lines[0]
    # --migrate upgrades first and then serves.
    served = serving(["--migrate"], env)
    try:
        assert wait_ready(f"http://127.0.0.1:{port}/readyz", served).json()["schema"] == "current"
    finally:
        stop(served)


def _readyz(hub: Hub) -> httpx.Response:
    with api_client(hub) as client:
        return client.get("/readyz")


@pytest.mark.parametrize(
    ("make_db", "label"), [(_empty_sqlite, "missing"), (_partial_sqlite, "behind")], ids=["missing", "behind"]
)
def test_readyz_is_unavailable_until_the_schema_is_current(tmp_path: Path, make_db: object, label: str) -> None:
    url = make_db(tmp_path)  # type: ignore[operator]
    hub = build_hub(Settings(database_url=url, data_dir=tmp_path / "d", secret_key="k"))  # type: ignore[arg-type]
    try:
        resp = _readyz(hub)
        assert resp.status_code == 503
        assert resp.json() == {"status": "unavailable", "database": "ok", "schema": label}
        upgrade(url)
        resp = _readyz(hub)
        assert resp.status_code == 200
        assert resp.json()["schema"] == "current"
    finally:
        hub.close()


def test_readyz_is_ok_on_a_migrated_database(hub: Hub) -> None:
    resp = _readyz(hub)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "database": "ok", "schema": "current"}


# --- item 16: one line per failure, --debug for the traceback, which database -----------------

FAILURES = [
    # (id, extra env, args, fragment the line must hold, exit code)
    ("no-database", {}, ["orgs", "list"], "run `vitalbridge migrate`", 1),
    ("no-tables", {"VB_DATABASE_URL": "EMPTY"}, ["orgs", "list"], "run `vitalbridge migrate`", 1),
    (
        "unreachable",
        {"VB_DATABASE_URL": "postgresql://clinic:hunter2-secret@127.0.0.1:1/rpm"},
        ["orgs", "list"],
        "check that it is running",
        1,
    ),
    (
        "bad-scheme",
        {"VB_DATABASE_URL": "mysql://clinic:hunter2-secret@db/rpm"},
        ["orgs", "list"],
        "VB_DATABASE_URL",
        1,
    ),
    ("bad-port", {"VB_PORT": "eighty"}, ["orgs", "list"], "VB_PORT", 1),
    ("bad-bool", {"VB_ALLOW_PRIVATE_URLS": "perhaps"}, ["orgs", "list"], "VB_ALLOW_PRIVATE_URLS", 1),
    ("bad-enum-setting", {"ECW_ENVIRONMENT": "prod"}, ["migrate"], "ECW_ENVIRONMENT", 1),
    ("bad-enum-option", {}, ["tokens", "create", "--org", "x", "--role", "owner"], "--role", 2),
    ("unknown-command", {}, ["deliveries", "inspect"], "vitalbridge deliveries --help", 2),
]


@pytest.mark.parametrize(("extra", "args", "fragment", "code"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
def test_cli_failures_are_one_line(
    tmp_path: Path, extra: dict[str, str], args: list[str], fragment: str, code: int
) -> None:
    if extra.get("VB_DATABASE_URL") == "EMPTY":
        extra = {**extra, "VB_DATABASE_URL": _empty_sqlite(tmp_path)}
    env = base_env(tmp_path, **extra)
    proc = run(args, env)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert fragment in lines[0]
    assert "hunter2-secret" not in proc.stderr
    # A failed read never leaves a database (or key) behind.
    assert not (tmp_path / "data" / "vitalbridge.db").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    env = base_env(tmp_path, VB_DATABASE_URL="postgresql://clinic:hunter2-secret@127.0.0.1:1/rpm")
    proc = run(["--debug", "orgs", "list"], env)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    assert "DatabaseUnreachable" in proc.stderr


def test_commands_say_which_database_they_write(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    db = (tmp_path / "data" / "vitalbridge.db").resolve()
    first = run(["migrate"], env)
    assert first.returncode == 0, first.stderr
    assert f"creating SQLite file {db}" in first.stderr
    again = run(["migrate"], env)
    assert f"migrating SQLite file {db}" in again.stderr
    created = run(["orgs", "create", "Hillside Clinic"], env)
    assert created.returncode == 0
    assert f"wrote to SQLite file {db}" in created.stderr
    listed = run(["orgs", "list"], env)
    assert "Hillside Clinic" in listed.stdout
    assert "wrote to" not in listed.stderr
    assert "creating key file" not in first.stderr  # VB_SECRET_KEY is set
    # Without VB_SECRET_KEY the generated key file is named too, once.
    keyless = {k: v for k, v in env.items() if k != "VB_SECRET_KEY"}
    keyless["VB_DATA_DIR"] = str(tmp_path / "keyless")
    made = run(["migrate"], keyless)
    assert f"creating key file {(tmp_path / 'keyless' / 'secret.key').resolve()}" in made.stderr
    assert "creating key file" not in run(["migrate"], keyless).stderr
    # Another folder without VB_DATA_DIR: no silent fresh database, the line names where it looked.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other_env = {k: v for k, v in env.items() if k != "VB_DATA_DIR"}
    lost = run(["orgs", "list"], other_env, cwd=elsewhere)
    assert lost.returncode == 1
    assert str((elsewhere / "var" / "vitalbridge.db").resolve()) in lost.stderr
    assert not (elsewhere / "var" / "vitalbridge.db").exists()


def test_database_description_masks_the_password(db_url: str, tmp_path: Path) -> None:
    from vitalbridge.db.status import describe

    assert "hunter2" not in describe("postgresql://clinic:hunter2@db.example:5432/rpm")
    assert describe("postgresql://clinic:hunter2@db.example:5432/rpm").endswith("@db.example:5432/rpm")
    env = base_env(tmp_path, VB_DATABASE_URL=db_url)
    proc = run(["orgs", "create", "Masked Clinic"], env)
    assert proc.returncode == 0, proc.stderr
    assert "wrote to " in proc.stderr
