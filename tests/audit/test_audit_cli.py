"""``vitalbridge audit verify|export|prune`` and ``users``/``tokens`` commands, as real subprocesses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.audit.tamper import raw_sql
from tests.test_cli import cli_env, run
from vitalbridge.audit import Outcome, record
from vitalbridge.runtime import build_hub
from vitalbridge.settings import Settings


# Subprocesses are slow to start; the commands' logic runs on both backends in the service tests.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_audit_commands(db_url: str, tmp_path: Path) -> None:
    env = cli_env(db_url, tmp_path)
    run(["migrate"], env)
    hub = build_hub(Settings(database_url=db_url, data_dir=tmp_path / "data", secret_key="cli-test-key"))  # type: ignore[arg-type]
    old = datetime.now(UTC) - timedelta(days=3000)
    with hub.sessions() as session, session.begin():
        for i in range(3):
            record(
                session, action="old", outcome=Outcome.success, actor="service:x", occurred_at=old + timedelta(hours=i)
            )
    org = run(["orgs", "create", "CLI Org"], env).stdout.strip()
    user = run(["users", "add", "--org", org, "--email", "ops@cli.example", "--role", "admin"], env).stdout.strip()
    assert user in run(["users", "list", "--org", "CLI Org"], env).stdout
    token = run(["tokens", "create", "--org", org, "--name", "ci"], env).stdout.strip()
    listing = run(["tokens", "list", "--org", org], env).stdout
    assert token not in listing
    assert token[:10] in listing
    token_id = listing.split("\t")[0]
    assert run(["tokens", "revoke", token_id, "--org", org], env).stdout.startswith("revoked")
    assert run(["tokens", "revoke", "nope", "--org", org], env, ok=False).returncode == 1

    ok = run(["audit", "verify"], env)
    assert "audit chain intact: 6 entries" in ok.stdout
    head = ok.stdout.split("head ")[1].split()[0]
    assert run(["audit", "verify", "--anchor", head], env).returncode == 0

    out = tmp_path / "audit.ndjson"
    run(["audit", "export", "--since", "2000-01-01", "--until", "2100-01-01", "--output", str(out)], env)
    actions = [json.loads(line)["action"] for line in out.read_text().splitlines()]
    assert actions == ["old", "old", "old", "user.created", "token.created", "token.revoked"]
    csv_out = run(
        ["audit", "export", "--since", "2000-01-01", "--until", "2100-01-01", "--format", "csv", "--org", org], env
    )
    assert csv_out.stdout.splitlines()[0].startswith("seq,occurred_at,actor")
    assert len(csv_out.stdout.splitlines()) == 4  # header + the organization's three entries

    refused = run(["audit", "prune", "--before", datetime.now(UTC).date().isoformat()], env, ok=False)
    assert refused.returncode == 1
    assert "retention window" in refused.stderr
    pruned = run(["audit", "prune", "--before", (old + timedelta(days=1)).date().isoformat()], env)
    assert pruned.stdout.startswith("pruned")
    assert "checkpoint through seq" in run(["audit", "verify"], env).stdout

    raw_sql(hub, "UPDATE audit_entries SET action = 'forged' WHERE seq = 5")
    hub.close()
    broken = run(["audit", "verify"], env, ok=False)
    assert broken.returncode == 1
    assert "BROKEN at seq 5 (edited)" in broken.stderr
