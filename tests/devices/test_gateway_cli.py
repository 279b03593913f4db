"""``vitalbridge gateways add|rotate-secret|finish-rotation|list|sync`` against the real database."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from tests.readings_support import bp, use_hub_database
from tests.support import api_client, make_tenant
from vitalbridge.cli import app
from vitalbridge.devices.simulator import GatewaySimulator, post_webhook
from vitalbridge.runtime import Hub
from vitalbridge.servers import ServerThread

runner = CliRunner()


@pytest.fixture
def cli_env(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Hub:
    use_hub_database(hub, monkeypatch)
    return hub


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_add_rotate_finish_from_the_command_line(cli_env: Hub) -> None:
    hub = cli_env
    make_tenant(hub, "Clinic CLI")
    out = invoke("gateways", "add", "--org", "Clinic CLI", "--kind", "mioconnect", "--name", "main hub")
    gateway_id = re.search(r"gateway id: (\S+)", out).group(1)
    secret = re.search(r"secret:\s+(\S+)", out).group(1)
    assert secret.startswith("vbgw_")
    assert f"{gateway_id}\tmioconnect\tmain hub\t-" in invoke("gateways", "list", "--org", "Clinic CLI")
    new_secret = re.search(r"secret:\s+(\S+)", invoke("gateways", "rotate-secret", gateway_id)).group(1)
    assert "rotating" in invoke("gateways", "list", "--org", "Clinic CLI")
    with api_client(hub) as client:
        url = str(client.base_url)
        assert post_webhook(client, url, gateway_id, secret, bp("cli-1")).status_code == 202
        assert post_webhook(client, url, gateway_id, new_secret, bp("cli-2")).status_code == 202
        invoke("gateways", "finish-rotation", gateway_id)
        assert post_webhook(client, url, gateway_id, secret, bp("cli-3")).status_code == 401
        assert post_webhook(client, url, gateway_id, new_secret, bp("cli-4")).status_code == 202
    second = runner.invoke(app, ["gateways", "finish-rotation", gateway_id])
    assert second.exit_code == 1
    assert "no rotation in progress" in second.output
    assert runner.invoke(app, ["gateways", "rotate-secret", "nope"]).exit_code == 1


def test_sync_from_the_command_line_continues_where_it_stopped(cli_env: Hub) -> None:
    hub = cli_env
    make_tenant(hub, "Clinic CLI")
    start = datetime.now(UTC) - timedelta(days=3)
    sim = GatewaySimulator("key-1", [bp(f"s-{i}", at=start + timedelta(hours=i)) for i in range(3)])
    with ServerThread(sim.app) as url:
        out = runner.invoke(
            app,
            ["gateways", "add", "--org", "Clinic CLI", "--kind", "mioconnect", "--api-url", url],
            env={"VB_GATEWAY_API_KEY": "key-1"},
        ).output
        gateway_id = re.search(r"gateway id: (\S+)", out).group(1)
        no_since = runner.invoke(app, ["gateway", "sync", "--gateway", gateway_id])
        assert no_since.exit_code == 2
        summary = json.loads(
            invoke("gateway", "sync", "--gateway", gateway_id, "--since", start.isoformat()).splitlines()[-1]
        )
        assert (summary["stored"], summary["pages"]) == (3, 1)
        resumed = json.loads(invoke("gateway", "sync", "--gateway", gateway_id).splitlines()[-1])
        assert resumed["stored"] == 0
        naive = runner.invoke(app, ["gateway", "sync", "--gateway", gateway_id, "--since", "2025-01-01T00:00:00"])
        assert naive.exit_code == 2


def test_gateway_api_url_must_pass_the_ssrf_guard(cli_env: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tenant(cli_env, "Clinic CLI")
    monkeypatch.setenv("VB_ALLOW_PRIVATE_URLS", "false")
    metadata = "http://169.254.169.254/latest/meta-data/"
    refused = runner.invoke(
        app, ["gateways", "add", "--org", "Clinic CLI", "--kind", "mioconnect", "--api-url", metadata]
    )
    assert refused.exit_code == 1
    assert "api_url" in refused.output
    assert metadata not in refused.output
    assert invoke("gateways", "list", "--org", "Clinic CLI").strip() == ""
    out = invoke("gateways", "add", "--org", "Clinic CLI", "--kind", "mioconnect")
    gateway_id = re.search(r"gateway id: (\S+)", out).group(1)
    again = runner.invoke(app, ["gateways", "set-api", gateway_id, "--api-url", "http://[2002:7f00:1::]:6379/"])
    assert again.exit_code == 1
    assert "private, loopback" in again.output
