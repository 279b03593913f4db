"""A reusable leak check: everything the hub emitted, searched for PHI and secrets.

``leak_harness`` (fixture in ``tests/conftest.py``) gives a hub whose logging runs the real
pipeline at DEBUG into a log file and onto stderr; the test drives it, then calls
``assert_no_leak([...])`` with the distinctive values it seeded. Searched:

- every log line (the rotating file and captured stdout/stderr, i.e. the real handlers),
- exception messages the test hands to ``note_exception``,
- Prometheus metrics (the process registry, and ``/metrics`` when the hub serves it),
- every stored audit entry (all columns, ``detail`` included).

Features add their own flows (webhooks, deliveries, push) to the test that uses it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from vitalbridge.audit.models import AuditEntry
from vitalbridge.runtime import Hub


class LeakHarness:
    def __init__(self, hub: Hub, log_file: Path, capfd: pytest.CaptureFixture[str]) -> None:
        self.hub = hub
        self.log_file = log_file
        self._capfd = capfd
        self._captured: list[str] = []
        self._exceptions: list[str] = []
        self.client: httpx.Client | None = None  # set when the hub is served, to read /metrics

    def note_exception(self, exc: BaseException) -> None:
        self._exceptions.append(f"{type(exc).__name__}: {exc}")

    def _logs(self) -> str:
        out, err = self._capfd.readouterr()
        self._captured += [out, err]
        files = sorted(self.log_file.parent.glob(self.log_file.name + "*"))
        return "\n".join([*(f.read_text(encoding="utf-8") for f in files), *self._captured])

    def log_lines(self) -> list[dict[str, object]]:
        """The JSON log records written so far (from the log file)."""
        return [json.loads(line) for line in self.log_file.read_text(encoding="utf-8").splitlines() if line]

    def _metrics(self) -> str:
        from prometheus_client import REGISTRY, generate_latest

        text = generate_latest(REGISTRY).decode()
        if self.client is not None:
            resp = self.client.get("/metrics")
            if resp.status_code == 200:
                text += resp.text
        return text

    def _audit(self) -> str:
        with self.hub.sessions() as session:
            rows = session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
            return "\n".join(
                json.dumps({c.name: getattr(r, c.name) for c in AuditEntry.__table__.columns}, default=str)
                for r in rows
            )

    def sources(self) -> dict[str, str]:
        return {
            "logs": self._logs(),
            "exceptions": "\n".join(self._exceptions),
            "metrics": self._metrics(),
            "audit": self._audit(),
        }

    def assert_no_leak(self, strings: Iterable[str]) -> None:
        needles = [s for s in strings if s]
        assert needles, "give the values to look for"
        hits = []
        for source, text in self.sources().items():
            lowered = text.lower()
            for needle in needles:
                if needle.lower() in lowered:
                    at = lowered.index(needle.lower())
                    hits.append(f"{source}: {needle!r} in …{text[max(0, at - 80) : at + 80]!r}…")
        assert not hits, "leaked:\n" + "\n".join(hits)
