"""ASGI glue for the per-practice rate limit and the switchable faults (SPEC §11).

Order, outermost first: rate limit (every FHIR request counts, eCW-style, even ones a fault
will spoil), then faults, then the app. Token requests are rate limited inside the token
endpoint, which is the only place that knows which client, and so which practices, they
concern; the fault layer covers the token path only when a plan says ``apply_to_token``.

A ``reset`` needs the TCP connection itself: uvicorn hands the ASGI app its connection's
``receive`` as a bound method whose object holds the asyncio transport. Setting ``SO_LINGER``
to zero before aborting makes the kernel send an RST, which clients see as "connection reset"
rather than as any HTTP status.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vitalbridge.sandbox.faults import Decision, FaultKind
from vitalbridge.sandbox.responses import oauth_json, outcome_response
from vitalbridge.sandbox.state import FHIR_PREFIX, TOKEN_PATH, SandboxState

_PRACTICE_PATH = re.compile(rf"^{re.escape(FHIR_PREFIX)}/([^/]+)(?:/|$)")


def practice_of(path: str) -> str | None:
    match = _PRACTICE_PATH.match(path)
    return match[1] if match else None


def kind_of(method: str, path: str) -> str:
    """What a FHIR request does, for ``fhir_requests_by_kind`` (calls per Observation)."""
    segments = [s for s in path.split("/")[4:] if s]  # after /fhir/r4/{practice}
    if segments == ["metadata"]:
        return "capabilities"
    if method == "POST" and len(segments) == 1:
        return "create"
    if method == "GET" and len(segments) == 1:
        return "search"
    if method == "GET" and len(segments) == 2 and not segments[1].startswith("$"):
        return "read"
    return "other"


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        practice = practice_of(scope["path"]) if scope["type"] == "http" else None
        if practice is None or practice not in self.state.patients:
            await self.app(scope, receive, send)
            return
        self.state.stats.count("fhir_requests_by_practice", practice)
        self.state.stats.count("fhir_requests_by_kind", kind_of(scope["method"], scope["path"]))
        wait = self.state.limiter.acquire([practice])
        if wait is None:
            await self.app(scope, receive, send)
            return
        self.state.stats.count("rate_limited_by_practice", practice)
        limit = self.state.config.rate_limit_per_minute
        response = outcome_response(
            429,
            "throttled",
            f"rate limit of {limit} requests/minute reached for practice {practice}",
            self.state.retry_after(wait),
        )
        await response(scope, receive, send)


class FaultMiddleware:
    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        is_token = path == TOKEN_PATH
        practice = practice_of(path)
        decision = None
        if is_token:
            decision = self.state.faults.decide(None)
        elif practice is not None and practice in self.state.patients:
            decision = self.state.faults.decide(practice)
        if decision is None:
            await self.app(scope, receive, send)
            return
        await self._apply(decision, is_token, scope, receive, send)

    async def _apply(self, decision: Decision, is_token: bool, scope: Scope, receive: Receive, send: Send) -> None:
        plan = decision.plan
        if plan.latency_ms:
            await asyncio.sleep(plan.latency_ms / 1000)
        kind = decision.kind
        if kind is None:
            await self.app(scope, receive, send)
            return
        self.state.stats.count("faults_injected", kind.value)
        if kind is FaultKind.rate_429:
            await _error(429, plan.retry_after_s, "injected fault: rate limited", is_token)(scope, receive, send)
        elif kind is FaultKind.error:
            await _error(plan.error_status, plan.retry_after_s, "injected fault: server error", is_token)(
                scope, receive, send
            )
        elif kind is FaultKind.timeout:
            still_connected = await hold(receive, plan.timeout_s or self.state.config.fault_timeout_s)
            if still_connected and plan.timeout_action == "drop":
                await drop_connection(receive)
            elif still_connected:
                await _error(504, None, "injected fault: upstream timed out", is_token)(scope, receive, send)
        elif kind is FaultKind.reset:
            await drop_connection(receive)
        else:
            await self._after_commit(decision, is_token, scope, receive, send)

    async def _after_commit(
        self, decision: Decision, is_token: bool, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Let the app do the work, swallow its answer, then fail as if the reply were lost."""
        started: list[Message] = []

        async def swallow(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.append(message)

        await self.app(scope, receive, swallow)
        if decision.plan.after_commit_action == "drop":
            await drop_connection(receive)
        else:
            await _error(decision.plan.error_status, None, "injected fault: failed after processing", is_token)(
                scope, receive, send
            )


def _error(status: int, retry_after: int | None, message: str, is_token: bool) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None and status in (429, 503) else {}
    if is_token:
        error = "temporarily_unavailable" if status in (429, 503) else "server_error"
        return oauth_json({"error": error, "error_description": message}, status, headers)
    code = {429: "throttled", 504: "timeout"}.get(status, "transient")
    return outcome_response(status, code, message, headers)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def hold(receive: Receive, seconds: float) -> bool:
    """Hold the request up to ``seconds``; False as soon as the client hangs up.

    Watching for the disconnect (rather than sleeping blindly) releases the request, and so
    server shutdown, the moment the client's own timeout fires.
    """
    try:
        await asyncio.wait_for(_until_disconnect(receive), timeout=seconds)
    except TimeoutError:
        return True
    return False


async def drop_connection(receive: Receive) -> None:
    """Close the client's TCP connection with an RST and no HTTP response at all."""
    transport: Any = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionResetError("injected fault: connection reset (this server exposes no transport)")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    # Wait for the server to notice, so it does not try to answer on the dead connection.
    await asyncio.wait_for(_until_disconnect(receive), timeout=5)
