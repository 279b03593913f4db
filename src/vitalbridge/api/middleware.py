"""ASGI middleware of the hub API: request context, hardening, PHI access audit (SPEC §2, §9).

Outermost first:

1. ``RequestContextMiddleware``: correlation id (``X-Request-ID``) for logs and audit entries;
   one ``http.access`` line per request (route template, never the path); with
   ``ECW_LOG_LEVEL=DEBUG`` also one ``http.exchange`` line, bodies described by shape.
2. ``SecurityHeadersMiddleware``: nosniff, no framing, no referrer, ``no-store`` on ``/api``.
3. CORS, only when ``VB_CORS_ORIGINS`` names origins.
4. ``InboundRateLimitMiddleware``: per client address and path prefix (429 + Retry-After).
5. ``BodyLimitMiddleware``: ``VB_MAX_BODY_BYTES`` (413).
6. ``AccessAuditMiddleware``: writes ``phi.access`` for routes declared ``phi=True``, before the
   response leaves; if the entry cannot be written the caller gets a 500, not the PHI.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import anyio
from starlette.datastructures import MutableHeaders

from vitalbridge.api.deps import ACCESS_STATE_KEY, AccessNote
from vitalbridge.api.throttle import InboundRateLimiter, client_ip
from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.observability.context import accept_correlation_id, correlation_scope, current_correlation_id
from vitalbridge.observability.logging import get_logger
from vitalbridge.observability.redaction import SAFE_BODY_KEYS, describe_body
from vitalbridge.runtime import Hub

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = get_logger("vitalbridge.http")
# Bodies kept for the DEBUG exchange log, at most.
_DEBUG_BODY_LIMIT = 64 * 1024


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _send_problem(
    send: Send, status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _body_for_log(chunks: list[bytes], content_type: str | None, *, safe_keys: frozenset[str]) -> Any:
    raw = b"".join(chunks)
    if not raw:
        return None
    if content_type and "json" in content_type:
        try:
            return describe_body(json.loads(raw[:_DEBUG_BODY_LIMIT]), safe_keys=safe_keys)
        except (ValueError, RecursionError):
            # Not JSON, or nested deeper than the parser's recursion allows (a poison payload):
            # the log line must still be written and the connection kept; describe the bytes.
            pass
    # Non-JSON bodies (HL7, form posts, binary) are described, never echoed.
    return {"bytes": len(raw), "content_type": content_type}


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, debug_exchanges: bool) -> None:
        self.app = app
        self.debug = debug_exchanges

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = accept_correlation_id(_header(scope, b"x-request-id"))
        started = time.perf_counter()
        status: list[int] = []
        req_chunks: list[bytes] = []
        resp_chunks: list[bytes] = []
        resp_type: list[str | None] = [None]

        async def receive_logged() -> Message:
            message = await receive()
            if self.debug and message["type"] == "http.request" and sum(map(len, req_chunks)) < _DEBUG_BODY_LIMIT:
                req_chunks.append(message.get("body", b""))
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = cid
                resp_type[0] = headers.get("content-type")
            elif (
                message["type"] == "http.response.body"
                and self.debug
                and sum(map(len, resp_chunks)) < _DEBUG_BODY_LIMIT
            ):
                resp_chunks.append(message.get("body", b""))
            await send(message)

        with correlation_scope(cid):
            try:
                await self.app(scope, receive_logged if self.debug else receive, send_with_id)
            finally:
                route = getattr(scope.get("route"), "path", None)
                # The route template, never the concrete path: a caller can put anything in a
                # path segment (an MRN, a device serial), and ids are in the audit trail already.
                # This line replaces uvicorn's access log, which prints the concrete path.
                template = route if isinstance(route, str) else "<unrouted>"
                latency_ms = round((time.perf_counter() - started) * 1000, 3)
                _log.info(
                    "http.access",
                    method=scope.get("method"),
                    route=template,
                    status=status[0] if status else 500,
                    latency_ms=latency_ms,
                )
                if self.debug:
                    query = scope.get("query_string", b"").decode("latin-1")
                    _log.debug(
                        "http.exchange",
                        method=scope.get("method"),
                        route=template,
                        # Parameter names only: values (name=, birthdate=) can be PHI.
                        query_params=sorted({k for k, _ in parse_qsl(query, keep_blank_values=True)}),
                        status=status[0] if status else 500,
                        latency_ms=latency_ms,
                        # The request is the caller's text: its shape only, no value kept.
                        request_body=_body_for_log(req_chunks, _header(scope, b"content-type"), safe_keys=frozenset()),
                        response_body=_body_for_log(resp_chunks, resp_type[0], safe_keys=SAFE_BODY_KEYS),
                    )


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = str(scope.get("path", "")).startswith("/api/")

        async def send_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if api:
                    # JSON only: nothing on /api may run scripts or be cached by a shared proxy.
                    headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
                    headers["Cache-Control"] = "no-store"
                else:
                    headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, send_headers)


class InboundRateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, limiter: InboundRateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            wait = self.limiter.check(client_ip(scope), str(scope.get("path", "")))
            if wait > 0:
                retry = max(1, round(wait + 0.5))
                await _send_problem(
                    send,
                    429,
                    "rate_limited",
                    "too many requests from this address to this endpoint; retry later",
                    {"Retry-After": str(retry)},
                )
                return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _too_large(self, send: Send) -> None:
        await _send_problem(
            send,
            413,
            "payload_too_large",
            f"request body exceeds the limit of {self.max_bytes} bytes (VB_MAX_BODY_BYTES)",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _send_problem(send, 400, "bad_request", "invalid Content-Length header")
                return
            if int(declared) > self.max_bytes:
                await self._too_large(send)
                return
            # The server holds the client to the declared length.
            await self.app(scope, receive, send)
            return
        if _header(scope, b"transfer-encoding") is None:
            await self.app(scope, receive, send)
            return
        # Chunked upload: read it up to the limit before the app sees it (memory ≤ the limit).
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(body)
            more = bool(message.get("more_body", False))
        await self.app(scope, _replay([{"type": "http.request", "body": b"".join(chunks)}], receive), send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


_INTERNAL_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def resolved_ids(note: AccessNote, status: int) -> list[str]:
    """The hub ids a PHI route resolved: its path parameters, only when it answered with
    success (a ``phi=True`` route looks its objects up by internal id in the caller's
    organization) and only in the hub's id format. A refused or unknown reference is whatever
    the caller typed — an MRN, a name — so it is never stored; the route template is."""
    if status >= 400:
        return []
    return [p for p in note.path_params if _INTERNAL_ID.fullmatch(p)]


class AccessAuditMiddleware:
    def __init__(self, app: ASGIApp, *, hub: Hub) -> None:
        self.app = app
        self.hub = hub

    def _record(self, note: AccessNote, status: int, latency_ms: float, correlation_id: str | None) -> None:
        with self.hub.sessions() as session, session.begin():
            record(
                session,
                action="phi.access",
                outcome=Outcome.success if status < 400 else (Outcome.denied if status in (401, 403) else "failure"),
                actor=Actor("token", note.principal.token_id),
                organization_id=note.principal.organization_id,
                resource_ids=resolved_ids(note, status),
                status_code=status,
                latency_ms=latency_ms,
                correlation_id=correlation_id,
                detail={"route": note.route, "method": note.method, "role": note.principal.role.value},
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        failed = False

        async def send_after_audit(message: Message) -> None:
            nonlocal failed
            if failed:
                return  # the original response is dropped; a 500 went out instead
            if message["type"] == "http.response.start":
                note = state.get(ACCESS_STATE_KEY)
                if isinstance(note, AccessNote):
                    latency = (time.perf_counter() - started) * 1000
                    try:
                        await anyio.to_thread.run_sync(
                            self._record, note, int(message["status"]), latency, current_correlation_id()
                        )
                    except Exception as exc:  # noqa: BLE001 - any failure: withhold the PHI
                        failed = True
                        _log.error("audit.write_failed", error=type(exc).__name__, route=note.route)
                        await _send_problem(
                            send, 500, "audit_unavailable", "the access could not be audited; nothing was returned"
                        )
                        return
            await send(message)

        await self.app(scope, receive, send_after_audit)
