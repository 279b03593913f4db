"""Background services that run inside the hub process (embedded default).

A feature registers a ``start(hub) -> stop`` coroutine with ``register``; the app lifespan
starts them all and stops them in reverse order. Production runs the same work in separate
``vitalbridge worker`` processes and leaves ``VB_INPROCESS_WORKER=false``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from vitalbridge.runtime import Hub

Stop = Callable[[], Awaitable[None]]
Starter = Callable[[Hub], Awaitable[Stop]]

_STARTERS: list[tuple[str, Starter]] = []


def register(name: str, starter: Starter) -> None:
    if name not in {n for n, _ in _STARTERS}:
        _STARTERS.append((name, starter))


async def start_services(hub: Hub) -> list[Stop]:
    stops: list[Stop] = []
    for _name, starter in _STARTERS:
        stops.append(await starter(hub))
    return stops


async def stop_services(stops: list[Stop]) -> None:
    for stop in reversed(stops):
        await stop()
