"""``POST /api/v1/webhooks/{kind}/``: gateway webhooks (SPEC §5). No hub token: the HMAC authenticates."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from vitalbridge.api.deps import HubDep, open_route
from vitalbridge.api.throttle import GatewayRateLimiter, InboundRateLimiter, claims_gateway, client_ip
from vitalbridge.devices.gateways import GatewayKind
from vitalbridge.devices.receive import receive_webhook
from vitalbridge.errors import NotFound, PayloadTooLarge, RateLimited, VitalbridgeError
from vitalbridge.observability.context import accept_correlation_id, current_correlation_id

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


def _gateway_admission(request: Request, admitted: list[str]) -> Callable[[str], None]:
    """Called once the signature verified: note it, then take from that gateway's bucket."""
    limiter = getattr(request.app.state, "gateway_limiter", None)

    def admit(gateway_id: str) -> None:
        admitted.append(gateway_id)
        if not isinstance(limiter, GatewayRateLimiter):
            return
        wait = limiter.take(gateway_id)
        if wait > 0:
            raise RateLimited("too many requests from this gateway; retry later", retry_after=wait)

    return admit


def _count_refusal_against_address(request: Request) -> None:
    """A webhook that named a gateway but did not authenticate as one (unknown kind, body too
    large, bad signature…) is limited per address like any unauthenticated call. Requests that
    named no gateway were already counted by the middleware."""
    limiter = getattr(request.app.state, "inbound_limiter", None)
    if not claims_gateway(request.scope):
        return
    if isinstance(limiter, InboundRateLimiter):
        wait = limiter.check(client_ip(request.scope), request.url.path)
        if wait > 0:
            raise RateLimited("too many requests from this address to this endpoint; retry later", retry_after=wait)


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
        429: {
            "description": "rate_limited: too many requests from this gateway (VB_GATEWAY_RATE_LIMIT_PER_MINUTE) "
            "or, unauthenticated, from this address (VB_INBOUND_RATE_LIMITS); retry after Retry-After"
        },
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
    # Set by RequestContextMiddleware, which also echoes it as X-Request-ID on the answer.
    correlation_id = current_correlation_id() or accept_correlation_id(request.headers.get("x-request-id"))
    admitted: list[str] = []
    admit = _gateway_admission(request, admitted)
    try:
        try:
            gateway_kind = GatewayKind(kind)
        except ValueError:
            raise NotFound("no such gateway kind; see docs/gateways/") from None
        body = await _read_limited(request, hub.settings.webhook_max_body_bytes)
        answer = await run_in_threadpool(
            lambda: receive_webhook(
                hub,
                kind=gateway_kind,
                headers=request.headers,
                body=body,
                content_type=request.headers.get("content-type"),
                correlation_id=correlation_id,
                started=started,
                admit=admit,
            )
        )
    except VitalbridgeError:
        if not admitted:
            _count_refusal_against_address(request)
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
