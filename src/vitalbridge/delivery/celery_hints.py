"""Hub side of the Celery trigger: publish a task for each row that just became pending.

Used when ``VB_INPROCESS_WORKER=false`` and ``VB_BROKER_URL`` is set. Without a broker the hub
publishes nothing and separate ``vitalbridge worker`` processes find due rows by polling.
"""

from __future__ import annotations

import logging

from vitalbridge.delivery import hints
from vitalbridge.lifecycle import Stop
from vitalbridge.runtime import Hub

log = logging.getLogger(__name__)


async def start_celery_hints(hub: Hub) -> Stop:
    if not hub.settings.broker_url:

        async def nothing() -> None:
            return None

        return nothing
    from vitalbridge.delivery import celery_app

    celery_app.configure(hub.settings)
    unsubscribe = hints.subscribe(celery_app.enqueue)

    async def stop() -> None:
        unsubscribe()

    return stop
