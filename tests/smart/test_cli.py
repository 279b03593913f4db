"""``vitalbridge keys|ecw|tokens clear``, invoked in-process through Click's runner (the CLI
reads its settings from the environment the runner sets, exactly as in a shell)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.conftest import TEST_SECRET_KEY
from tests.smart.conftest import SmartEnv
from tests.test_cli import cli_env
from vitalbridge.cli import app
from vitalbridge.smart.models import EhrToken


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(args: list[str], env: dict[str, str], ok: bool = True) -> Result:
    only_ours = {k: v for k, v in env.items() if k.startswith(("VB_", "ECW_"))}
    cleared = {k: None for k in os.environ if k.startswith(("VB_", "ECW_")) and k not in only_ours}
    result = CliRunner().invoke(app, args, env={**cleared, **only_ours})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    out = Result(result.exit_code, result.stdout, result.stderr)
    if ok:
        assert out.returncode == 0, out.stderr
    return out


def test_key_lifecycle(db_url: str, tmp_path: Path) -> None:
    env = cli_env(db_url, tmp_path)
    assert run(["keys", "list"], env).stdout == ""
    first = run(["keys", "generate"], env).stdout.strip()
    assert len(first) == 43  # base64url SHA-256 thumbprint
    again = run(["keys", "generate"], env, ok=False)
    assert again.returncode == 1
    assert "keys rotate" in again.stderr
    second = run(["keys", "rotate"], env).stdout.split("\t")[0]
    listed = {k["kid"]: k for k in json.loads(run(["keys", "list", "--json"], env).stdout)}
    assert listed[first]["state"] == "active"
    assert listed[second]["state"] == "next"
    assert listed[second]["activate_at"] != "-"
    assert "active (signing now)" in run(["keys", "rotate", "--now"], env).stdout
    refused = run(["keys", "retire", "--", second], env, ok=False)
    assert refused.returncode == 1
    assert "active signing key" in refused.stderr
    assert run(["keys", "retire", "--", first], env).stdout.strip() == f"{first}\tretired"
    states = {k["kid"]: k["state"] for k in json.loads(run(["keys", "list", "--json"], env).stdout)}
    assert states == {first: "retired", second: "active"}


def test_connection_checks_and_cache_clearing(smart_env: SmartEnv, tmp_path: Path) -> None:
    env = cli_env(str(smart_env.hub.settings.database_url), tmp_path)
    env.update({"VB_SECRET_KEY": TEST_SECRET_KEY, "VB_PUBLIC_URL": smart_env.hub_url})
    jwt = json.loads(run(["ecw", "test-jwt", "--org", "Clinic A", "--practice", "JAFJCD"], env).stdout)
    assert jwt["status"] == "success"
    assert jwt["expires_in"] == 3600
    conn = json.loads(run(["ecw", "test-connection", "--org", "Clinic A", "--practice", "JAFJCD"], env).stdout)
    assert conn["status"] == "success"
    assert conn["fhir_version"] == "4.0.1"
    assert {"Patient", "Observation"} <= set(conn["capabilities"])
    status = json.loads(run(["ecw", "status", "--org", "Clinic A", "--practice", "JAFJCD"], env).stdout)
    assert status["jwt_configured"] is True
    assert status["jwks_url"] == f"{smart_env.hub_url}{smart_env.jwks_path}"
    assert status["signing_key_set"] == "organization"

    with smart_env.hub.sessions() as session:
        assert session.scalar(select(func.count()).select_from(EhrToken)) == 1
    cleared = run(["tokens", "clear", "--org", "Clinic A", "--practice", "JAFJCD"], env).stdout
    assert cleared.strip() == "cleared 1 cached EHR token(s)"
    with smart_env.hub.sessions() as session:
        assert session.scalar(select(func.count()).select_from(EhrToken)) == 0

    smart_env.register_client(jwks_url=f"{smart_env.hub_url}/elsewhere.json")
    failed = run(["ecw", "test-jwt", "--org", "Clinic A", "--practice", "JAFJCD"], env, ok=False)
    assert failed.returncode == 1
    error = json.loads(failed.stdout)
    assert error["status"] == "error"
    assert error["oauth_error"] == "invalid_client"
