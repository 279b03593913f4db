"""Stored Observations, per practice, in creation order (SPEC §11).

Kept as the JSON the server answered with (id and meta included), with indexes for the searches
the sandbox supports: by subject, and by identifier (``system|value`` and bare value), which is
also what conditional create (``If-None-Exist: identifier=…``) looks up.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def now_instant() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _PracticeObservations:
    order: list[str] = field(default_factory=list)
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_identifier: defaultdict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    by_value: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    by_subject: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def index(self, resource: dict[str, Any]) -> None:
        obs_id = resource["id"]
        self.order.append(obs_id)
        self.by_id[obs_id] = resource
        for ident in resource.get("identifier") or []:
            value = ident.get("value")
            if isinstance(value, str):
                self.by_identifier[(ident.get("system") or "", value)].append(obs_id)
                self.by_value[value].append(obs_id)
        reference = (resource.get("subject") or {}).get("reference")
        if isinstance(reference, str):
            self.by_subject[reference].append(obs_id)


class ObservationStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._practices: defaultdict[str, _PracticeObservations] = defaultdict(_PracticeObservations)
        self.changes = 0  # bumped on every write, so the state file knows when to save

    @property
    def lock(self) -> threading.RLock:
        """Held across search-then-create, so two conditional creates cannot both create."""
        return self._lock

    def add(self, practice: str, resource: dict[str, Any]) -> dict[str, Any]:
        """Store a new Observation: server-assigned id, versionId 1, lastUpdated now."""
        stored = dict(resource)
        stored["id"] = uuid.uuid4().hex
        meta = dict(stored.get("meta") or {})
        meta.update({"versionId": "1", "lastUpdated": now_instant()})
        stored["meta"] = meta
        with self._lock:
            self._practices[practice].index(stored)
            self.changes += 1
        return stored

    def restore(self, practice: str, resource: dict[str, Any]) -> None:
        with self._lock:
            self._practices[practice].index(resource)

    def get(self, practice: str, obs_id: str) -> dict[str, Any] | None:
        return self._practices[practice].by_id.get(obs_id) if practice in self._practices else None

    def ids(self, practice: str) -> list[str]:
        return list(self._practices[practice].order) if practice in self._practices else []

    def ids_by_identifier(self, practice: str, system: str | None, value: str) -> list[str]:
        if practice not in self._practices:
            return []
        p = self._practices[practice]
        return list(p.by_value[value] if system is None else p.by_identifier[(system, value)])

    def ids_by_subject(self, practice: str, reference: str) -> list[str]:
        return list(self._practices[practice].by_subject[reference]) if practice in self._practices else []

    def all(self, practice: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        with self._lock:
            names = [practice] if practice is not None else sorted(self._practices)
            snapshot = [(p, self._practices[p].by_id[i]) for p in names if p in self._practices
                        for i in self._practices[p].order]  # fmt: skip
        return iter(snapshot)

    def count(self, practice: str | None = None) -> int:
        if practice is not None:
            return len(self._practices[practice].order) if practice in self._practices else 0
        return sum(len(p.order) for p in self._practices.values())

    def clear(self) -> None:
        with self._lock:
            self._practices.clear()
            self.changes += 1
