"""ASGI app factory for the hub.

Feature routers are listed in ``ROUTERS``; background services (the in-process delivery worker
and others) register start/stop hooks in ``vitalbridge.lifecycle`` and are started by the lifespan.
Middleware (request context, hardening, PHI access audit) is described in ``api.middleware``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from vitalbridge import __version__
from vitalbridge.api.docs import install_docs
from vitalbridge.api.errors import install_error_handlers
from vitalbridge.api.health import router as health_router
from vitalbridge.api.hl7 import router as hl7_router
from vitalbridge.api.metrics import router as metrics_router
from vitalbridge.api.middleware import (
    AccessAuditMiddleware,
    BodyLimitMiddleware,
    InboundRateLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from vitalbridge.api.openapi import install_openapi
from vitalbridge.api.throttle import AuthFailureThrottle, InboundRateLimiter
from vitalbridge.audit.views import router as audit_router
from vitalbridge.billing.views import router as billing_router
from vitalbridge.delivery import worker as _delivery_worker  # noqa: F401 - registers the in-process worker
from vitalbridge.delivery.views import router as deliveries_router
from vitalbridge.devices.views import devices_router, quarantine_router, readings_router
from vitalbridge.devices.webhook_views import router as webhooks_router
from vitalbridge.hl7v2.listener import start_hl7_listener
from vitalbridge.lifecycle import register, start_services, stop_services
from vitalbridge.notify import background as _push_background  # noqa: F401 - registers the service
from vitalbridge.notify.views import me_router, notify_router
from vitalbridge.observability.logging import configure_logging, debug_http_enabled
from vitalbridge.patients.views import ROUTERS as PATIENT_ROUTERS
from vitalbridge.runtime import Hub, build_hub
from vitalbridge.settings import Settings, load_settings
from vitalbridge.smart.views import jwks_router
from vitalbridge.smart.views import router as smart_router
from vitalbridge.tenancy.access_views import tokens_router, users_router
from vitalbridge.tenancy.views import router as practices_router
from vitalbridge.triage import background as _triage_background  # noqa: F401 - registers the service
from vitalbridge.triage.views import alerts_router, rules_router

ROUTERS = [
    health_router,
    practices_router,
    users_router,
    tokens_router,
    audit_router,
    hl7_router,
    jwks_router,
    smart_router,
    webhooks_router,
    devices_router,
    readings_router,
    quarantine_router,
    alerts_router,
    rules_router,
    deliveries_router,
    metrics_router,
    *PATIENT_ROUTERS,
    me_router,
    notify_router,
    billing_router,
]

# Off unless VB_HL7_PORT is set (docs/hl7.md).
register("hl7.listener", start_hl7_listener)


def create_app(settings: Settings | None = None, *, hub: Hub | None = None, background: bool = True) -> FastAPI:
    """Build the hub. ``background=False`` leaves workers off (tests drive them directly)."""
    if hub is None:
        hub = build_hub(settings or load_settings())
    settings = hub.settings
    configure_logging(settings)

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
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    app.state.hub = hub
    app.state.auth_throttle = AuthFailureThrottle(settings.auth_failures_per_minute)
    install_error_handlers(app)
    install_openapi(app)
    for router in ROUTERS:
        app.include_router(router)
    # add_middleware wraps: the last added runs first (outermost).
    app.add_middleware(AccessAuditMiddleware, hub=hub)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(InboundRateLimitMiddleware, limiter=InboundRateLimiter(settings.inbound_rate_limits))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.base_url.startswith("https://"))
    app.add_middleware(RequestContextMiddleware, debug_exchanges=debug_http_enabled(settings))
    # Outermost, so the throttles and everything else see the caller's address. The hub decides
    # whom to believe (VB_TRUSTED_PROXIES), not the server it runs under: `serve`, `up` and the
    # test servers turn uvicorn's own forwarded-header handling off, whose default trusts loopback.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app
