"""The triage background service (SPEC §6): sweep untriaged readings, check for missed readings.

Registered with ``vitalbridge.lifecycle`` so the hub runs it in-process (embedded default, when
``VB_INPROCESS_WORKER`` is on); ``vitalbridge triage run`` runs the same loop as its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from vitalbridge import lifecycle
from vitalbridge.db.base import utcnow
from vitalbridge.runtime import Hub
from vitalbridge.triage.evaluate import triage_pending
from vitalbridge.triage.missed import MissedSummary, check_missed_readings

log = structlog.get_logger(__name__)


def sweep_once(hub: Hub) -> int:
    """Triage up to one batch of readings that are still untriaged; returns how many."""
    with hub.sessions() as session, session.begin():
        return triage_pending(session, now=utcnow())


def missed_once(hub: Hub) -> MissedSummary:
    with hub.sessions() as session, session.begin():
        return check_missed_readings(session, now=utcnow())


async def run_loop(hub: Hub, *, stop: asyncio.Event | None = None) -> None:
    settings = hub.settings
    next_missed = 0.0
    while stop is None or not stop.is_set():
        try:
            while await asyncio.to_thread(sweep_once, hub) > 0:
                pass
            if time.monotonic() >= next_missed:
                summary = await asyncio.to_thread(missed_once, hub)
                log.info("triage.missed_checked", checked=summary.checked, opened=summary.opened)
                next_missed = time.monotonic() + settings.missed_reading_check_interval_s
        except Exception as exc:  # noqa: BLE001 - the loop must outlive a bad batch or a DB blip
            log.warning("triage.loop_error", error=type(exc).__name__)
        await asyncio.sleep(settings.triage_sweep_interval_s)


async def start(hub: Hub) -> lifecycle.Stop:
    if not hub.settings.inprocess_worker:

        async def noop() -> None:
            return None

        return noop
    task = asyncio.create_task(run_loop(hub), name="triage")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop


lifecycle.register("triage", start)
