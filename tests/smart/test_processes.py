"""Single-flight across real processes: three hub worker processes start together on a cold
cache and share one token (SPEC §3 "Concurrent workers must not stampede the token endpoint")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_SECRET_KEY
from tests.smart.conftest import SmartEnv

WORKER = """
import os, sys, time
from vitalbridge.ehr.client import ehr_client
from vitalbridge.runtime import build_hub
from vitalbridge.settings import load_settings
from vitalbridge.tenancy.models import Practice

hub = build_hub(load_settings())
with hub.sessions() as session:
    practice = session.get(Practice, sys.argv[1])
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.002)
for _ in range(5):
    print(ehr_client(hub).get(practice, "metadata").status_code, flush=True)
hub.close()
"""


def test_worker_processes_share_one_token(smart_env: SmartEnv, tmp_path: Path) -> None:
    go = tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VB_", "ECW_"))}
    env.update(
        {
            "VB_DATABASE_URL": str(smart_env.hub.settings.database_url),
            "VB_DATA_DIR": str(tmp_path / "data"),
            "VB_SECRET_KEY": TEST_SECRET_KEY,
            "VB_PUBLIC_URL": smart_env.hub_url,
            "ECW_RATE_LIMIT": "10000",
            # The sandbox is on loopback: the workers' connect-time SSRF check must allow it.
            "VB_ALLOW_PRIVATE_URLS": "true",
        }
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, smart_env.practice.id, str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        go.touch()  # all three are connected and waiting: release them at once
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.split() == ["200"] * 5
    stats = smart_env.sandbox.stats()
    assert stats["token_requests"] == 1
    assert stats["fhir_requests_by_practice"]["JAFJCD"] == 15
