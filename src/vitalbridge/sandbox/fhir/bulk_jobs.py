"""Bulk export jobs (FHIR Bulk Data Access IG v2, "Bulk Data Kick-off / Status / File Request").

A job snapshots, at kick-off, which resources it will export (the transaction time), then
"runs" for ``export_job_s`` so clients have to poll. Its output is split into NDJSON files of at
most ``export_file_max_resources`` lines, generated line by line when downloaded.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ExportFile:
    resource_type: str
    name: str  # e.g. Patient-1.ndjson
    start: int  # slice of the job's snapshot for this type
    stop: int

    @property
    def count(self) -> int:
        return self.stop - self.start


@dataclass
class ExportJob:
    id: str
    practice: str
    client_id: str
    request_url: str
    transaction_time: str
    ready_at: float  # monotonic
    expires_at: float  # wall clock
    patients: Sequence[int]  # patient indices in the snapshot
    observations: Sequence[str]  # observation ids in the snapshot
    files: list[ExportFile] = field(default_factory=list)
    next_poll_at: float = 0.0  # monotonic; polling earlier is answered 429

    def progress(self, now: float, duration: float) -> int:
        if duration <= 0:
            return 100
        return max(0, min(99, int(100 * (1 - (self.ready_at - now) / duration))))

    def file(self, name: str) -> ExportFile | None:
        return next((f for f in self.files if f.name == name), None)


def split_files(resource_type: str, total: int, per_file: int) -> list[ExportFile]:
    if total == 0:
        return []
    parts = math.ceil(total / per_file)
    return [
        ExportFile(resource_type, f"{resource_type}-{n + 1}.ndjson", n * per_file, min(total, (n + 1) * per_file))
        for n in range(parts)
    ]


class ExportJobs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, ExportJob] = {}

    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(12)

    def add(self, job: ExportJob) -> None:
        with self._lock:
            now = time.time()
            self._jobs = {k: v for k, v in self._jobs.items() if v.expires_at > now}
            self._jobs[job.id] = job

    def get(self, practice: str, job_id: str) -> ExportJob | None:
        job = self._jobs.get(job_id)
        if job is None or job.practice != practice or job.expires_at <= time.time():
            return None
        return job

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def clear(self) -> None:
        with self._lock:
            self._jobs.clear()
