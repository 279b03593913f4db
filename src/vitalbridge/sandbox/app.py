"""``create_sandbox_app(config)``: the eCW-like sandbox EHR as its own ASGI app (SPEC §11).

Endpoints, mirroring eCW's paths:

    POST /oauth/oauth2/token                             oauth/token.py
    GET|POST /oauth/oauth2/authorize                     oauth/authorize.py
    POST /oauth/oauth2/revoke                            oauth/revoke.py
    GET  /fhir/r4/{practice}/.well-known/smart-configuration   oauth/discovery.py
    GET  /fhir/r4/{practice}/metadata                    fhir/capability.py
    …/Patient, …/Observation                             fhir/patients.py, fhir/observations.py
    …/Patient/$export, …/Group/all/$export, …/bulkstatus, …/bulkfiles   fhir/bulk.py
    /_sandbox/…                                          control.py (no auth; sandbox only)

It shares nothing with the hub: no database, no settings, no tenancy imports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response

from vitalbridge.api.docs import install_docs
from vitalbridge.sandbox import control, persistence
from vitalbridge.sandbox.config import SandboxConfig
from vitalbridge.sandbox.errors import FhirError, OAuthError
from vitalbridge.sandbox.fhir import bulk, capability, observations, patients
from vitalbridge.sandbox.fhir.ecw_errors import EcwError, ecw_error_handler
from vitalbridge.sandbox.middleware import FaultMiddleware, RateLimitMiddleware, practice_of
from vitalbridge.sandbox.oauth import authorize, discovery, revoke, token
from vitalbridge.sandbox.responses import fhir_error_handler, oauth_error_handler, outcome_response
from vitalbridge.sandbox.state import SandboxState


def create_sandbox_app(config: SandboxConfig) -> FastAPI:
    state = SandboxState(config)
    saver = None
    if config.state_file is not None:
        persistence.load(state, config.state_file)
        saver = persistence.StateSaver(state, config.state_file)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if saver is not None:
            saver.start()
        try:
            yield
        finally:
            if saver is not None:
                await saver.stop()
            await state.jwks.aclose()

    app = FastAPI(
        title="vitalbridge sandbox EHR",
        description="An eClinicalWorks-like FHIR R4 server for demos and tests. See docs/sandbox.md.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/_sandbox/openapi.json",
        lifespan=lifespan,
    )
    install_docs(
        app,
        docs_url="/_sandbox/docs",
        redoc_url="/_sandbox/redoc",
        openapi_url="/_sandbox/openapi.json",
        assets_url="/_sandbox/docs/assets",
    )
    app.state.sandbox = state
    app.add_exception_handler(OAuthError, oauth_error_handler)
    app.add_exception_handler(FhirError, fhir_error_handler)
    app.add_exception_handler(EcwError, ecw_error_handler)
    app.add_exception_handler(HTTPException, _routing_error)
    app.add_exception_handler(Exception, _unexpected)

    # Bulk routes first: `Patient/$export` must not be read as `Patient/{id}`.
    for module in (token, authorize, revoke, discovery, capability, bulk, patients, observations, control):
        app.include_router(module.router)

    # Added innermost first: the rate limit sees every request before a fault can spoil it.
    app.add_middleware(FaultMiddleware, state=state)
    app.add_middleware(RateLimitMiddleware, state=state)
    if config.allowed_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(config.allowed_origins), allow_methods=["*"], allow_headers=["*"]
        )
    return app


async def _routing_error(request: Request, exc: Exception) -> Response:
    """Unknown FHIR paths and methods still answer with an OperationOutcome."""
    assert isinstance(exc, HTTPException)
    if practice_of(request.url.path) is None:
        return await http_exception_handler(request, exc)
    if exc.status_code == 405:
        message = f"{request.method} is not supported on {request.url.path}"
        return outcome_response(405, "not-supported", message, exc.headers)
    if exc.status_code == 404:
        return outcome_response(404, "not-supported", f"no such FHIR endpoint: {request.url.path}")
    return outcome_response(exc.status_code, "processing", str(exc.detail), exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    """A bug in the sandbox still answers in the caller's wire format."""
    if practice_of(request.url.path) is not None:
        return outcome_response(500, "exception", f"sandbox internal error: {type(exc).__name__}")
    return Response(f"sandbox internal error: {type(exc).__name__}", status_code=500)
