"""Turn any VitalbridgeError into an HTTP problem body, in one place.

FastAPI's own 422 for a malformed request echoes each failing value back (``input``, and
``ctx`` for some rules): a name typed into a code field, an MRN pasted into a path id. The
handler here keeps the same shape (``{"detail": [{loc, msg, type}]}``) without the values, so
the field and the rule are named and the caller's input is never repeated (DESIGN: errors on
the wire).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from vitalbridge.errors import RateLimited, Unauthorized, VitalbridgeError

# Rule parameters from pydantic's ``ctx`` that describe the rule, not the submitted value.
_SAFE_CTX_KEYS = frozenset({"pattern", "min_length", "max_length", "ge", "gt", "le", "lt", "expected", "multiple_of"})


async def _handle(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VitalbridgeError)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return JSONResponse(exc.as_problem(), status_code=exc.http_status, headers=headers)


def field_error_without_value(error: Any) -> dict[str, Any]:
    """One pydantic error as ``{loc, msg, type}`` (plus rule parameters), never the input."""
    out: dict[str, Any] = {
        "type": str(error.get("type", "value_error")),
        "loc": [p if isinstance(p, int) else str(p) for p in error.get("loc", ())],
        "msg": str(error.get("msg", "invalid value")),
    }
    ctx = error.get("ctx")
    if isinstance(ctx, dict):
        safe = {k: v for k, v in ctx.items() if k in _SAFE_CTX_KEYS and isinstance(v, str | int | float)}
        if safe:
            out["ctx"] = safe
    return out


async def _handle_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": [field_error_without_value(e) for e in exc.errors()]}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(VitalbridgeError, _handle)
    app.add_exception_handler(RequestValidationError, _handle_validation)
