"""The delivery worker loop (SPEC §7, §10; DESIGN principle 2).

One asyncio loop, used both inside the hub (``VB_INPROCESS_WORKER=true``, the embedded default,
started by the app lifespan) and by ``vitalbridge worker`` processes:

* claim as many due rows as there are free slots (``VB_DELIVERY_CONCURRENCY``) and run
  ``deliver`` for each in a thread;
* wait for a wake-up hint (a new pending row), a finished delivery, or the poll interval;
* every ``VB_DELIVERY_SWEEP_INTERVAL_S`` return rows with expired leases to ``pending``.

Stopping waits for running deliveries; a killed worker's rows come back after their lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from vitalbridge.delivery import hints
from vitalbridge.delivery.claims import claim_due, next_due_in, sweep_expired
from vitalbridge.delivery.deliver import deliver, worker_id
from vitalbridge.lifecycle import Stop, register
from vitalbridge.runtime import Hub

log = logging.getLogger(__name__)
T = TypeVar("T")


class Worker:
    def __init__(self, hub: Hub, *, concurrency: int | None = None) -> None:
        self.hub = hub
        self.concurrency = concurrency or hub.settings.delivery_concurrency
        self.owner = worker_id()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: set[asyncio.Future[object]] = set()

    def hint(self, _ids: list[str]) -> None:
        """Thread-safe: called after a commit that made rows pending."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        unsubscribe = hints.subscribe(self.hint)
        settings = self.hub.settings
        executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="delivery")
        last_sweep = 0.0
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if now - last_sweep >= settings.delivery_sweep_interval_s:
                    last_sweep = now
                    await self._safely(sweep_expired, self.hub)
                self._wake.clear()
                free = self.concurrency - len(self._running)
                claimed: list[str] = []
                if free > 0:
                    claimed = await self._safely(claim_due, self.hub, self.owner, free) or []
                for outbox_id in claimed:
                    fut = self._loop.run_in_executor(executor, self._deliver, outbox_id)
                    self._running.add(fut)
                    fut.add_done_callback(self._done)
                if claimed and len(self._running) < self.concurrency:
                    continue  # more may be due
                await self._idle(settings.delivery_poll_interval_s)
        finally:
            unsubscribe()
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)
            executor.shutdown(wait=True)

    def _deliver(self, outbox_id: str) -> object:
        try:
            return deliver(self.hub, outbox_id, owner=self.owner)
        except Exception:  # the lease brings the row back; keep the worker alive
            log.exception("delivery of outbox row %s failed unexpectedly", outbox_id)
            return None

    def _done(self, fut: asyncio.Future[object]) -> None:
        self._running.discard(fut)
        self._wake.set()

    async def _idle(self, poll_s: float) -> None:
        timeout = poll_s
        if len(self._running) < self.concurrency:
            due_in = await self._safely(next_due_in, self.hub)
            if due_in is not None:
                timeout = min(timeout, max(0.01, due_in))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _safely(self, fn: Callable[..., T], *args: object) -> T | None:
        try:
            return await asyncio.to_thread(fn, *args)
        except Exception:  # a database hiccup must not end the worker
            log.warning("delivery worker step failed; retrying", exc_info=True)
            await asyncio.sleep(min(1.0, self.hub.settings.delivery_poll_interval_s))
            return None


async def start_inprocess_worker(hub: Hub) -> Stop:
    """Lifecycle hook: the embedded worker runs in the hub's event loop when enabled."""
    if not hub.settings.inprocess_worker:
        from vitalbridge.delivery.celery_hints import start_celery_hints

        return await start_celery_hints(hub)
    worker = Worker(hub)
    task = asyncio.create_task(worker.run(), name="delivery-worker")

    async def stop() -> None:
        worker.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop


register("delivery.worker", start_inprocess_worker)
