"""The scriptable CLI: orgs, tokens, practices, migrate — run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import api_client
from vitalbridge.runtime import build_hub
from vitalbridge.settings import Settings

VB = [sys.executable, "-m", "vitalbridge"]


def run(args: list[str], env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*VB, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def cli_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VB_", "ECW_"))}
    env.update({"VB_DATABASE_URL": db_url, "VB_DATA_DIR": str(tmp_path / "data"), "VB_SECRET_KEY": "cli-test-key"})
    # Test machines resolve no public names (example.org); the SSRF guard has its own tests.
    env["VB_ALLOW_PRIVATE_URLS"] = "true"
    return env


def test_orgs_tokens_practices_round_trip(db_url: str, tmp_path: Path) -> None:
    env = cli_env(db_url, tmp_path)
    run(["migrate"], env)
    org_id = run(["orgs", "create", "Clinic One"], env).stdout.strip()
    assert len(org_id) == 36
    dup = run(["orgs", "create", "Clinic One"], env, ok=False)
    assert dup.returncode == 1
    assert "already exists" in dup.stderr
    token = run(["tokens", "create", "--org", "Clinic One", "--role", "admin"], env).stdout.strip()
    assert token.startswith("vb_")
    practice_id = run(
        [
            "practices",
            "add",
            "--org",
            org_id,
            "--code",
            "JAFJCD",
            "--fhir-base-url",
            "https://fhir.example.org/fhir/r4/JAFJCD",
            "--token-url",
            "https://oauth.example.org/oauth/oauth2/token",
            "--client-id",
            "abc",
        ],
        env,
    ).stdout.strip()
    listed = json.loads(run(["practices", "list", "--org", org_id, "--json"], env).stdout)
    assert [p["id"] for p in listed] == [practice_id]
    # The token the CLI printed works against the API.
    hub = build_hub(Settings(database_url=db_url, data_dir=tmp_path / "data", secret_key="cli-test-key"))  # type: ignore[arg-type]
    with api_client(hub) as client:
        resp = client.get("/api/v1/practices/", headers={"Authorization": f"Bearer {token}"})
        assert [p["practice_code"] for p in resp.json()] == ["JAFJCD"]
    hub.close()


def test_cli_errors_are_clear(db_url: str, tmp_path: Path) -> None:
    env = cli_env(db_url, tmp_path)
    run(["migrate"], env)
    missing = run(["tokens", "create", "--org", "nope"], env, ok=False)
    assert missing.returncode == 1
    assert "vitalbridge orgs create" in missing.stderr
    bad_url = run(
        [
            "practices",
            "add",
            "--org",
            "x",
            "--code",
            "A",
            "--fhir-base-url",
            "nope",
            "--token-url",
            "nope",
            "--client-id",
            "c",
        ],
        env,
        ok=False,
    )
    assert bad_url.returncode == 2
    assert "fhir_base_url" in bad_url.stderr


def test_serve_runs_the_hub(db_url: str, tmp_path: Path) -> None:
    import socket
    import time

    env = cli_env(db_url, tmp_path)
    run(["migrate"], env)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([*VB, "serve", "--port", str(port)], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["database"] == "ok"
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "hub did not start"
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
