"""Patient merges (SPEC §4 "Merged patients"; FHIR R4 Patient.link semantics).

``POST /_sandbox/patients/merge`` folds one synthetic patient into another. What the old id
answers afterwards depends on the mode chosen at merge time:

- ``link`` (default): 200, the old Patient with ``active: false`` and
  ``link: [{other: Patient/<into>, type: "replaced-by"}]``; the survivor gets a ``replaces`` link.
- ``gone``: 410 Gone, as servers that delete the merged-away record do.
- ``not_found``: 404, as servers that forget it entirely do.

In every mode the survivor carries the old MRN as an extra identifier (``use: old``), so a
client can re-link by identifier search. Observations naming the old id are refused with 422.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vitalbridge.sandbox.synthetic import SyntheticPatients


class MergeMode(StrEnum):
    link = "link"
    gone = "gone"
    not_found = "not_found"


class MergeIn(BaseModel):
    """Body of ``POST /_sandbox/patients/merge``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    practice: str
    from_: str = Field(alias="from")
    into: str
    mode: Literal["link", "gone", "not_found"] = "link"


@dataclass(frozen=True)
class Merge:
    old_index: int
    into_index: int
    mode: MergeMode


class MergeRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_old: dict[str, dict[int, Merge]] = {}
        self._by_survivor: dict[str, dict[int, list[Merge]]] = {}

    def merge(self, practice: str, patients: SyntheticPatients, body: MergeIn) -> Merge:
        """Record a merge; ValueError with a reason when it cannot happen."""
        old = patients.index_of(body.from_)
        into = patients.index_of(body.into)
        if old is None or into is None:
            missing = body.from_ if old is None else body.into
            raise ValueError(f"Patient/{missing} does not exist in practice {practice}")
        if old == into:
            raise ValueError("from and into are the same patient")
        with self._lock:
            if old in self._by_old.get(practice, {}):
                raise ValueError(f"Patient/{body.from_} was already merged")
            if into in self._by_old.get(practice, {}):
                raise ValueError(f"Patient/{body.into} was itself merged away; merge into its survivor")
            record = Merge(old, into, MergeMode(body.mode))
            self._by_old.setdefault(practice, {})[old] = record
            self._by_survivor.setdefault(practice, {}).setdefault(into, []).append(record)
        return record

    def merged_away(self, practice: str, index: int) -> Merge | None:
        return self._by_old.get(practice, {}).get(index)

    def absorbed(self, practice: str, index: int) -> list[Merge]:
        return list(self._by_survivor.get(practice, {}).get(index, []))

    def survivor_of_mrn(self, practice: str, old_index: int) -> int | None:
        merge = self.merged_away(practice, old_index)
        return merge.into_index if merge else None

    def records(self) -> dict[str, list[Merge]]:
        return {p: list(m.values()) for p, m in self._by_old.items()}

    def clear(self) -> None:
        with self._lock:
            self._by_old.clear()
            self._by_survivor.clear()
