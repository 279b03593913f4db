"""Celery trigger for deliveries (SPEC §10 scale-out; DESIGN principle 2), on Redis or RabbitMQ.

    celery -A vitalbridge.delivery.celery_app worker --pool threads --concurrency 8

(or ``vitalbridge worker --celery``). The broker is ``VB_BROKER_URL`` (``redis://…`` or
``amqp://…``). A message only says "outbox row X may be due": the task calls the same
``deliver(hub, outbox_id)`` as every other trigger, which claims the row atomically, so a
duplicated message is a no-op and a lost one only delays (the pump below re-sends hints for
due rows, and the sweeper returns expired leases). Each worker process runs that pump in a
thread: every ``VB_DELIVERY_POLL_INTERVAL_S`` it sweeps and enqueues due rows, so no separate
``celery beat`` is needed.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from vitalbridge.delivery.claims import due_ids, sweep_expired
from vitalbridge.delivery.deliver import deliver
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.settings import Settings, load_settings

log = logging.getLogger(__name__)

TASK = "vitalbridge.delivery.deliver"
app = Celery("vitalbridge")
_state: dict[str, Any] = {}
_state_lock = threading.Lock()


def configure(settings: Settings) -> Celery:
    transport: dict[str, Any] = {}
    if settings.celery_key_prefix:
        # kombu's Redis transport prefixes every key it writes (queues, unacked, bindings) with this.
        transport["global_keyprefix"] = settings.celery_key_prefix
    app.conf.update(
        broker_transport_options=transport,
        broker_url=settings.broker_url or "redis://127.0.0.1:6379/0",
        task_ignore_result=True,
        # A task is acknowledged after deliver() returns; with a killed worker the broker
        # re-delivers it, and deliver() is safe to run again.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_default_queue=settings.celery_queue,
    )
    return app


configure(load_settings())


def hub() -> Hub:
    with _state_lock:
        existing = _state.get("hub")
        if isinstance(existing, Hub):
            return existing
        built = build_hub(load_settings())
        _state["hub"] = built
        return built


@app.task(name=TASK, ignore_result=True)  # type: ignore[untyped-decorator]
def deliver_task(outbox_id: str) -> str:
    return deliver(hub(), outbox_id).status


def enqueue(ids: list[str]) -> None:
    for outbox_id in ids:
        deliver_task.apply_async(args=[outbox_id], retry=False)


class Pump:
    """Sweeps expired leases and re-sends hints for due rows (at most once per lease period each)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._stop = threading.Event()
        self._hinted: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="delivery-pump", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def tick(self) -> int:
        settings = self.hub.settings
        sweep_expired(self.hub)
        now = time.monotonic()
        self._hinted = {k: v for k, v in self._hinted.items() if now - v < settings.delivery_lease_s}
        fresh = [i for i in due_ids(self.hub, 500) if i not in self._hinted]
        enqueue(fresh)
        for outbox_id in fresh:
            self._hinted[outbox_id] = now
        return len(fresh)

    def _run(self) -> None:
        while not self._stop.wait(self.hub.settings.delivery_poll_interval_s):
            try:
                self.tick()
            except Exception:  # keep pumping through broker or database hiccups
                log.warning("delivery pump step failed", exc_info=True)


@worker_ready.connect  # type: ignore[untyped-decorator]
def _start_pump(**_kwargs: Any) -> None:
    pump = Pump(hub())
    _state["pump"] = pump
    pump.start()


@worker_shutdown.connect  # type: ignore[untyped-decorator]
def _stop_pump(**_kwargs: Any) -> None:
    pump = _state.pop("pump", None)
    if isinstance(pump, Pump):
        pump.stop()
