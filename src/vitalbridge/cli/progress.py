"""Progress of a long CLI job: elapsed time, rate, ETA and fault/retry counts.

On a terminal it is a progress bar (rich); otherwise (a pipe, a CI log) one plain line per
``interval_s`` and one at each phase's end, so a log file shows progress without control codes.
Both go to stderr: stdout stays the command's result (``--json``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _seconds(value: float) -> str:
    value = max(0, round(value))
    minutes, seconds = divmod(value, 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


@dataclass(frozen=True)
class Snapshot:
    """Where a phase stands; ``line()`` is the plain-text form."""

    phase: str
    done: int
    total: int
    elapsed_s: float
    faults: int = 0
    retries: int = 0

    @property
    def rate(self) -> float | None:
        return self.done / self.elapsed_s if self.elapsed_s > 0 and self.done > 0 else None

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        if self.done >= self.total:
            return 0.0
        return (self.total - self.done) / rate if rate else None

    def line(self) -> str:
        share = f"{100 * self.done // self.total}%" if self.total else "-"
        rate = f"{self.rate:.1f}/s" if self.rate is not None else "-"
        eta = _seconds(self.eta_s) if self.eta_s is not None else "?"
        return (
            f"{self.phase} {self.done}/{self.total} ({share})  elapsed {_seconds(self.elapsed_s)}  "
            f"rate {rate}  eta {eta}  faults {self.faults}  retries {self.retries}"
        )


class JobProgress:
    """``with JobProgress("demo") as p: p.phase("sending", 40); p.update(3, faults=1)``."""

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        interval_s: float = 5.0,
        terminal: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.interval_s = interval_s
        self.clock = clock
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._snapshot: Snapshot | None = None
        self._printed: Snapshot | None = None
        self._started = 0.0
        self._printed_at = 0.0

    def __enter__(self) -> JobProgress:
        if self.terminal:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("faults {task.fields[faults]}  retries {task.fields[retries]}"),
                console=Console(file=self.stream, force_terminal=True),
                transient=False,
            )
            self._bar.start()
        return self

    def phase(self, name: str, total: int) -> None:
        """Start a phase (ends the previous one)."""
        self._end_phase()
        self._started = self.clock()
        self._printed_at = self._started
        self._snapshot = Snapshot(f"{self.label}: {name}", 0, total, 0.0)
        if self._bar is not None:
            self._task = self._bar.add_task(self._snapshot.phase, total=total, rate="-", faults=0, retries=0)
        else:
            self._print(self._snapshot)

    def update(self, done: int, *, total: int | None = None, faults: int = 0, retries: int = 0) -> None:
        if self._snapshot is None:
            return
        now = self.clock()
        snap = Snapshot(self._snapshot.phase, done, total or self._snapshot.total, now - self._started, faults, retries)
        self._snapshot = snap
        if self._bar is not None and self._task is not None:
            rate = f"{snap.rate:.1f}/s" if snap.rate is not None else "-"
            self._bar.update(self._task, completed=done, total=snap.total, rate=rate, faults=faults, retries=retries)
        elif now - self._printed_at >= self.interval_s:
            self._print(snap)

    def _print(self, snap: Snapshot) -> None:
        self._printed_at = self.clock()
        self._printed = snap
        print(snap.line(), file=self.stream, flush=True)

    def _end_phase(self) -> None:
        if self._snapshot is not None and self._bar is None and self._snapshot != self._printed:
            self._print(self._snapshot)
        self._snapshot = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._end_phase()
        if self._bar is not None:
            self._bar.stop()
