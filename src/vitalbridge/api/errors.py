"""Turn any VitalbridgeError into an HTTP problem body, in one place."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from vitalbridge.errors import RateLimited, Unauthorized, VitalbridgeError


async def _handle(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VitalbridgeError)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return JSONResponse(exc.as_problem(), status_code=exc.http_status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(VitalbridgeError, _handle)
