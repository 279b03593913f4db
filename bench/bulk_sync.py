"""Bulk $export population sync: peak memory and throughput (``python -m bench.bulk_sync``).

SPEC §4 asks for Patients imported "in bounded memory". Three processes, as in production:

- the sandbox EHR, serving ``--patients`` synthetic patients (its own process: its memory is
  not the hub's);
- the hub's API in this process (the sandbox fetches the hub's JWKS from it);
- ``vitalbridge patients sync`` in a child process, whose peak RSS is read with ``wait4`` (the
  kernel's ``ru_maxrss`` of exactly that child).

A baseline sync of ``--baseline`` patients runs first in the same way, so the report carries
ratios measured in one run on one machine: memory should stay flat (ratio ≈ 1) while the
patient count grows tenfold, and time should grow about linearly.

Options: ``--patients N`` (default 100000), ``--baseline N`` (10000), ``--batch-size``,
``--database-url`` (default: a fresh SQLite file per run; pass a PostgreSQL URL to measure that),
``--limit-mb`` (250: the acceptance threshold the report checks).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import func, select

from vitalbridge.app import create_app
from vitalbridge.db.migrate import upgrade
from vitalbridge.patients.models import Patient
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.servers import ServerThread
from vitalbridge.settings import Settings
from vitalbridge.smart import keys
from vitalbridge.smart.services import jwks_url
from vitalbridge.tenancy import service
from vitalbridge.tenancy.schemas import PracticeIn

PRACTICE = "BULKBENCH"
CLIENT_ID = "bench-hub"
SECRET = "bench-kek-not-for-production"
SCOPES = ["system/Patient.read", "system/Observation.write"]


@dataclass(frozen=True)
class Run:
    patients: int
    seconds: float
    peak_rss_mb: float
    imported: int

    @property
    def rate(self) -> float:
        return self.patients / self.seconds if self.seconds else 0.0


def serve_sandbox(patients: int) -> None:
    """Child-process entry: serve a sandbox, print its URL, run until stdin closes."""
    from vitalbridge.sandbox.app import create_sandbox_app
    from vitalbridge.sandbox.config import SandboxConfig

    config = SandboxConfig(practices=(PRACTICE,), patients_per_practice=patients, rate_limit_per_minute=0)
    with ServerThread(create_sandbox_app(config)) as url:
        print(url, flush=True)
        sys.stdin.read()


def _start_sandbox(patients: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bulk_sync", "--serve-sandbox", str(patients)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit("the sandbox did not start")
    return proc, url


def _prepare(hub: Hub, sandbox_url: str, name: str) -> str:
    with hub.sessions() as session, session.begin():
        org = service.create_organization(session, name)
        service.add_practice(
            session,
            org.id,
            PracticeIn.model_validate(
                {
                    "practice_code": PRACTICE,
                    "fhir_base_url": f"{sandbox_url}/fhir/r4/{PRACTICE}",
                    "token_url": f"{sandbox_url}/oauth/oauth2/token",
                    "client_id": CLIENT_ID,
                    "scopes": SCOPES,
                    "rate_limit_per_minute": 100_000,
                }
            ),
            hub.sealer,
            hub.settings,
        )
        keys.ensure_signing_key(session, hub.sealer, key_size=2048, organization_id=org.id)
        return org.id


def _sync_in_child(env: dict[str, str], org_id: str, batch_size: int) -> tuple[float, float]:
    """Run the CLI sync; returns (seconds, peak RSS in MB of that process)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "vitalbridge", "patients", "sync", "--org", org_id, "--practice", PRACTICE),
            *("--min-poll-interval", "1", "--batch-size", str(batch_size)),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    tail = proc.stderr.read().decode(errors="replace")  # progress lines; read so the pipe never blocks
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"the sync failed ({proc.returncode}):\n{tail[-2000:]}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports kilobytes


def measure(patients: int, batch_size: int, database_url: str | None, workdir: Path) -> Run:
    url = database_url or f"sqlite:///{workdir / f'bench-{patients}.db'}"
    upgrade(url)
    settings = Settings(
        database_url=url,
        data_dir=workdir / "data",
        secret_key=SECRET,  # type: ignore[arg-type]
        allow_private_urls=True,
        inprocess_worker=False,
        ecw_rate_limit=1000.0,
    )
    sandbox, sandbox_url = _start_sandbox(patients)
    hub = build_hub(settings)
    try:
        with ServerThread(create_app(hub=hub, background=False)) as hub_url:
            hub.settings.public_url = hub_url
            org_id = _prepare(hub, sandbox_url, f"Bulk bench {patients} {time.time_ns()}")
            resp = httpx.post(
                f"{sandbox_url}/_sandbox/clients",
                json={
                    "client_id": CLIENT_ID,
                    "jwks_url": jwks_url(hub.settings, org_id),
                    "scopes": SCOPES,
                    "practices": [PRACTICE],
                },
            )
            resp.raise_for_status()
            env = {
                **os.environ,
                "VB_DATABASE_URL": url,
                "VB_SECRET_KEY": SECRET,
                "VB_ALLOW_PRIVATE_URLS": "true",
                "VB_PUBLIC_URL": hub_url,
                "VB_DATA_DIR": str(workdir / "data"),
                "ECW_RATE_LIMIT": "1000",
                "ECW_LOG_LEVEL": "WARNING",
            }
            seconds, rss = _sync_in_child(env, org_id, batch_size)
        with hub.sessions() as session:
            imported = int(
                session.scalar(select(func.count()).select_from(Patient).where(Patient.organization_id == org_id)) or 0
            )
    finally:
        hub.close()
        assert sandbox.stdin is not None
        sandbox.stdin.close()
        sandbox.wait(timeout=30)
    return Run(patients, seconds, rss, imported)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--limit-mb", type=float, default=250.0)
    parser.add_argument("--serve-sandbox", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_sandbox is not None:
        serve_sandbox(args.serve_sandbox)
        return
    with tempfile.TemporaryDirectory(prefix="vb-bulk-bench-") as tmp:
        runs: list[Run] = []
        for n in (args.baseline, args.patients):
            run = measure(n, args.batch_size, args.database_url, Path(tmp))
            runs.append(run)
            print(
                f"{n:>8,} patients: {run.seconds:7.1f} s, {run.rate:7,.0f} patients/s, "
                f"peak RSS {run.peak_rss_mb:6.1f} MB, imported {run.imported:,}",
                flush=True,
            )
    base, full = runs
    per_patient = (full.seconds / full.patients) / (base.seconds / base.patients)
    print(
        f"ratio full/baseline: patients x{full.patients / base.patients:.1f}, "
        f"peak RSS x{full.peak_rss_mb / base.peak_rss_mb:.2f}, time x{full.seconds / base.seconds:.1f}, "
        f"time per patient x{per_patient:.2f}"
    )
    once = all(r.imported == r.patients for r in runs)
    ok = full.peak_rss_mb < args.limit_mb and once
    print(
        f"{'PASS' if ok else 'FAIL'}: peak RSS {full.peak_rss_mb:.1f} MB (limit {args.limit_mb:.0f} MB), "
        f"every patient imported once: {once}"
    )
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
