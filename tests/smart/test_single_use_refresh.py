"""Single-use refresh tokens (eCW, field notes Q5): eight workers that find the user's access
token expired at the same moment must refresh it once. A second refresh with the same token
would look like theft to the EHR, which then revokes the whole grant and every worker loses the
practice until a user authorizes again."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from tests.conftest import TEST_SECRET_KEY
from tests.smart.conftest import SmartEnv
from tests.smart.test_standalone import connect, grant_row
from vitalbridge.db.base import utcnow
from vitalbridge.ehr.client import EhrClient
from vitalbridge.smart.models import EhrToken, GrantKind, GrantStatus
from vitalbridge.smart.services import build_smart

WORKERS = 8


def expire_access_token(env: SmartEnv) -> None:
    """The access token is past its expiry: nobody may use it, everyone needs the refresh."""
    past = utcnow() - timedelta(seconds=5)
    with env.hub.sessions() as session, session.begin():
        session.execute(
            update(EhrToken).where(EhrToken.kind == GrantKind.standalone).values(renew_at=past, expires_at=past)
        )


def test_eight_concurrent_refreshers_use_the_single_use_token_once(smart_env: SmartEnv) -> None:
    env = smart_env
    switches = env.sandbox.http.put("/_sandbox/behaviour", json={"single_use_refresh": True})
    assert switches.status_code == 200
    connect(env)
    expire_access_token(env)
    # Each worker has its own HTTP pool and cache object, as separate worker processes would;
    # only the database is shared.
    smarts = [build_smart(env.hub) for _ in range(WORKERS)]
    start = threading.Barrier(WORKERS)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        client = EhrClient(env.hub, smarts[index])
        start.wait()
        try:
            resp = client.get(env.practice, "Patient", params={"_count": 1}, grant=GrantKind.standalone)
            statuses.append(resp.status_code)
        except BaseException as exc:  # noqa: BLE001 - reported below with the others
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        for smart in smarts:
            smart.close()
    assert errors == []
    assert statuses == [200] * WORKERS
    stats = env.sandbox.stats()
    assert stats["token_requests_by_grant_type"]["refresh_token"] == 1
    assert "invalid_grant" not in stats["token_errors"]
    assert grant_row(env).status is GrantStatus.active

    # The rotated refresh token the one refresher stored is the live one: the next refresh works.
    expire_access_token(env)
    client = EhrClient(env.hub, env.smart)
    assert client.get(env.practice, "Patient", params={"_count": 1}, grant=GrantKind.standalone).status_code == 200
    assert env.sandbox.stats()["token_requests_by_grant_type"]["refresh_token"] == 2
    assert grant_row(env).status is GrantStatus.active


# Each process: its own hub (engine, HTTP pool, token cache object) on the shared database, and
# two threads, so eight refreshers run across four processes.
WORKER = """
import os, sys, threading, time
from vitalbridge.ehr.client import EhrClient
from vitalbridge.runtime import build_hub
from vitalbridge.settings import load_settings
from vitalbridge.smart.models import GrantKind
from vitalbridge.smart.services import build_smart
from vitalbridge.tenancy.models import Practice

hub = build_hub(load_settings())
with hub.sessions() as session:
    practice = session.get(Practice, sys.argv[1])
clients = [EhrClient(hub, build_smart(hub)) for _ in range(2)]
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.002)
out = []
def call(client):
    out.append(client.get(practice, "Patient", params={"_count": 1}, grant=GrantKind.standalone).status_code)
threads = [threading.Thread(target=call, args=(c,)) for c in clients]
for t in threads: t.start()
for t in threads: t.join()
print(" ".join(str(s) for s in out), flush=True)
hub.close()
"""


def test_refreshers_in_four_processes_use_the_single_use_token_once(smart_env: SmartEnv, tmp_path: Path) -> None:
    env = smart_env
    assert env.sandbox.http.put("/_sandbox/behaviour", json={"single_use_refresh": True}).status_code == 200
    connect(env)
    expire_access_token(env)
    go = tmp_path / "go"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("VB_", "ECW_"))}
    child_env.update(
        {
            "VB_DATABASE_URL": str(env.hub.settings.database_url),
            "VB_DATA_DIR": str(tmp_path / "data"),
            "VB_SECRET_KEY": TEST_SECRET_KEY,
            "VB_PUBLIC_URL": env.hub_url,
            "ECW_RATE_LIMIT": "10000",
            # The sandbox listens on loopback: each process applies the outbound address rule itself.
            "VB_ALLOW_PRIVATE_URLS": "true",
        }
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, env.practice.id, str(go)],
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS // 2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        go.touch()  # every process is connected and waiting: release them at once
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert out.split() == ["200", "200"]
    stats = env.sandbox.stats()
    assert stats["token_requests_by_grant_type"]["refresh_token"] == 1
    assert "invalid_grant" not in stats["token_errors"]
    assert grant_row(env).status is GrantStatus.active
