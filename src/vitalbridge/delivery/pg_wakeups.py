"""Cross-process wake-ups on PostgreSQL: LISTEN for the NOTIFY that commits with pending rows.

``hints`` sends ``NOTIFY vitalbridge_outbox`` inside every transaction that makes an outbox row
pending; PostgreSQL delivers it to listeners only after that transaction commits. A worker in any
process keeps one dedicated autocommit connection LISTENing and wakes its loop on each
notification, so receipt→EHR latency no longer waits for the poll interval. Polling stays the
safety net: a dropped listener connection is reopened (with a wake-up, since notifications sent
while nobody listened are gone), and until then the worker still polls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import make_url

from vitalbridge.delivery.hints import CHANNEL

log = logging.getLogger(__name__)

# How long to wait for a notification before checking that the connection is still alive.
_IDLE_CHECK_S = 30.0
_RECONNECT_S = (0.5, 10.0)


def listen_dsn(database_url: str) -> str | None:
    """The libpq DSN for ``database_url``, or None when the database is not PostgreSQL."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(dsn: str, wake: Callable[[], None], *, idle_check_s: float = _IDLE_CHECK_S) -> None:
    """Call ``wake`` for each notification until cancelled; reconnect after any failure."""
    backoff = _RECONNECT_S[0]
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=10)
            async with conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                backoff = _RECONNECT_S[0]
                wake()  # rows committed while nobody listened sent their NOTIFY to no one
                while True:
                    async for _notify in conn.notifies(timeout=idle_check_s):
                        wake()
                    await conn.execute("SELECT 1")  # a dead connection fails here, not silently
        except asyncio.CancelledError:
            raise
        except (psycopg.Error, OSError) as exc:  # keep trying; the worker polls meanwhile
            # The exception text can carry the DSN's host and user, never needed to act on this.
            log.warning("outbox LISTEN connection failed (%s); retrying", type(exc).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _RECONNECT_S[1])
