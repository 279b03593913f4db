"""``POST /api/v1/webhooks/{kind}/``: gateway webhooks (SPEC §5). No hub token: the HMAC authenticates."""

from __future__ import annotations

import time
import traceback
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from vitalbridge.api.deps import HubDep, open_route
from vitalbridge.devices.gateways import GatewayKind
from vitalbridge.devices.receive import receive_webhook
from vitalbridge.errors import NotFound, PayloadTooLarge, VitalbridgeError
from vitalbridge.observability.context import accept_correlation_id, current_correlation_id

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/{kind}/",
    status_code=202,
    dependencies=[Depends(open_route("HMAC-signed gateway webhook (SPEC §5)"))],
    responses={
        200: {"description": "re-delivery of a known gateway reading id: nothing new stored"},
        202: {"description": "stored (reading, measurements, outbox rows, audit) before this answer"},
        401: {"description": "missing headers, unknown gateway, stale timestamp or bad signature"},
        413: {"description": "body too large"},
        409: {
            "description": "reading_id_conflict: the reading id was already received with different content; "
            "the first reading is kept, this body is quarantined; do not retry"
        },
        422: {
            "description": "field errors (wrong types, malformed or poison JSON: too deep, too long a number, "
            "NaN/Infinity); the raw body is kept in quarantine; do not retry unchanged"
        },
    },
)
async def receive(
    kind: str,
    request: Request,
    hub: HubDep,
    _open: Annotated[None, Depends(open_route("HMAC-signed gateway webhook (X-Signature)"))],
) -> JSONResponse:
    """Receive one signed reading (docs/gateways/mioconnect.md)."""
    started = time.perf_counter()
    try:
        gateway_kind = GatewayKind(kind)
    except ValueError:
        raise NotFound("no such gateway kind; see docs/gateways/") from None
    # Set by RequestContextMiddleware, which also echoes it as X-Request-ID on the answer.
    correlation_id = current_correlation_id() or accept_correlation_id(request.headers.get("x-request-id"))
    body = await _read_limited(request, hub.settings.webhook_max_body_bytes)
    try:
        answer = await run_in_threadpool(
            lambda: receive_webhook(
                hub,
                kind=gateway_kind,
                headers=request.headers,
                body=body,
                content_type=request.headers.get("content-type"),
                correlation_id=correlation_id,
                started=started,
            )
        )
    except VitalbridgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure: nothing stored, tell the gateway to retry
        # Nothing was committed (one transaction). A clean 500 tells the gateway to retry. The log
        # gets the type and where it was raised, not the message or a traceback with locals: both
        # can carry reading values.
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        log.error(
            "webhook.store_failed",
            error=type(exc).__name__,
            where=f"{frame.filename}:{frame.lineno}",
            correlation_id=correlation_id,
        )
        raise VitalbridgeError("the reading was not stored; retry the delivery") from None
    return JSONResponse(answer.body, status_code=answer.status_code)
