"""ASGI app factory for the hub.

Feature routers are listed in ``ROUTERS``; background services (the in-process delivery worker
and others) register start/stop hooks in ``vitalbridge.lifecycle`` and are started by the lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from vitalbridge import __version__
from vitalbridge.api.errors import install_error_handlers
from vitalbridge.api.health import router as health_router
from vitalbridge.lifecycle import start_services, stop_services
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.settings import Settings, load_settings
from vitalbridge.smart.views import jwks_router
from vitalbridge.smart.views import router as smart_router
from vitalbridge.tenancy.views import router as practices_router

ROUTERS = [health_router, practices_router, jwks_router, smart_router]


def create_app(settings: Settings | None = None, *, hub: Hub | None = None, background: bool = True) -> FastAPI:
    """Build the hub. ``background=False`` leaves workers off (tests drive them directly)."""
    if hub is None:
        hub = build_hub(settings or load_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        handles = await start_services(hub) if background else []
        try:
            yield
        finally:
            await stop_services(handles)

    app = FastAPI(
        title="vitalbridge",
        version=__version__,
        description="Remote patient monitoring integration hub: device readings to the EHR as FHIR R4.",
        lifespan=lifespan,
    )
    app.state.hub = hub
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
