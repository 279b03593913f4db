"""Liveness and readiness (SPEC §10)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from vitalbridge.api.deps import HubDep
from vitalbridge.db.status import DatabaseUnreachable, schema_state

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up. Does not touch the database, so a slow DB never restarts the hub."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "database unreachable or its schema not current"}})
def readyz(hub: HubDep) -> JSONResponse:
    """Ready to take traffic: the database answers and its schema is this version's
    (``schema``: ``current``, ``behind`` or ``missing``; run ``vitalbridge migrate``)."""
    try:
        state = schema_state(hub.engine)
    except DatabaseUnreachable as exc:
        cause = exc.__context__ or exc
        return JSONResponse({"status": "unavailable", "database": type(cause).__name__}, status_code=503)
    except Exception as exc:  # noqa: BLE001 - any DB failure means "not ready"
        return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
    if not state.at_head:
        return JSONResponse({"status": "unavailable", "database": "ok", "schema": state.label}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok", "schema": "current"})
