"""The optional state file (``SandboxConfig.state_file``; SPEC §11): registered clients and stored
Observations survive a restart, so a demo can stop and start the sandbox.

Plain JSON, rewritten atomically (temp file + rename) at most every ``state_save_interval_s``
while something changed, and once more at shutdown. Client secrets are in it: the file is
created readable by its owner only, and is for sandboxes, never for real credentials.
Tokens, grants, merges, faults and stats are deliberately not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from vitalbridge.sandbox.oauth.clients import ClientIn
from vitalbridge.sandbox.state import SandboxState

FORMAT_VERSION = 1


def load(state: SandboxState, path: Path) -> None:
    if not path.exists():
        return
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    for raw in data.get("clients", []):
        body = ClientIn.model_validate(raw)
        if all(p in state.patients for p in body.practices):
            state.clients.upsert(body)
    for practice, resources in data.get("observations", {}).items():
        if practice in state.patients:
            for resource in resources:
                state.observations.restore(practice, resource)


def save(state: SandboxState, path: Path) -> None:
    observations: dict[str, list[dict[str, Any]]] = {}
    for practice, resource in state.observations.all():
        observations.setdefault(practice, []).append(resource)
    data = {
        "version": FORMAT_VERSION,
        "clients": [c.as_input().model_dump() for c in state.clients],
        "observations": observations,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, separators=(",", ":"))
    os.replace(tmp, path)


class StateSaver:
    """Saves when the observation store or the client registry changed since the last save."""

    def __init__(self, state: SandboxState, path: Path) -> None:
        self.state = state
        self.path = path
        self._saved_at: tuple[int, int] = self._version()
        self._task: asyncio.Task[None] | None = None

    def _version(self) -> tuple[int, int]:
        return self.state.observations.changes, self.state.client_changes

    def save_if_changed(self) -> None:
        version = self._version()
        if version != self._saved_at:
            save(self.state, self.path)
            self._saved_at = version

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.state.config.state_save_interval_s)
            self.save_if_changed()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.save_if_changed()
