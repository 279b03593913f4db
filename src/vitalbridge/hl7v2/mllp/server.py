"""An asyncio MLLP server (HL7 MLLP Release 2; SPEC §4 "an MLLP listener (TCP, optional TLS)").

Transport only: it turns connections into frames and hands each one to a ``FrameHandler``, whose
reply (the ACK payload) it frames and writes back, in order, one frame at a time. It knows nothing
of HL7 content. It protects the hub from its peers:

* a message must be complete within ``frame_timeout_s`` of its first start byte. The deadline is
  the whole message's: a sender that abandons its frame and starts again (a new <VT>) keeps the
  deadline it had, so restarting every few seconds cannot hold a connection open;
* a connection that completes no message for ``idle_timeout_s`` is closed. Only a complete
  message restarts that clock: bytes outside frames (a keep-alive of line noise) do not;
* frames over ``max_message_bytes`` are dropped as they arrive and reported to the handler, which
  may NAK them; memory per connection stays bounded;
* at most ``max_connections`` at once, and at most ``max_connections_per_peer`` from one client
  address (one IPv6 /64), so one host holding connections open cannot take the slots the real
  EHR needs; more are closed on accept.

Logs carry peer addresses, counts and sizes — never payload bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
from dataclasses import dataclass
from typing import Protocol

import structlog

from vitalbridge.hl7v2 import metrics
from vitalbridge.hl7v2.mllp.framing import Frame, FrameDecoder, Garbage, Oversize, encode_frame

log = structlog.get_logger("vitalbridge.hl7v2.mllp")


class FrameHandler(Protocol):
    async def on_frame(self, payload: bytes, peer: str) -> bytes | None:
        """Process one message; return the reply payload, or None to close the connection unanswered."""

    async def on_oversize(self, head: bytes, size: int, peer: str) -> bytes | None:
        """A frame over the limit ended; ``head`` is its first bytes. Reply payload, or None to close."""


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 1024 * 1024
    frame_timeout_s: float = 30.0
    idle_timeout_s: float = 300.0  # 0: never
    max_connections: int = 64
    max_connections_per_peer: int = 8
    read_chunk: int = 64 * 1024


@dataclass
class Stats:
    """Counters for one server instance (the Prometheus metrics aggregate across instances)."""

    connections: int = 0
    refused: int = 0
    reads: int = 0
    frames: int = 0
    garbage_bytes: int = 0
    oversize: int = 0
    timeouts: int = 0
    handler_errors: int = 0


def peer_key(address: str) -> str:
    """What the per-peer cap counts: an IPv4 address, or the /64 an IPv6 address belongs to (a
    site is given a whole /64, so one host can connect from as many of its addresses as it likes)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _peer_name(writer: asyncio.StreamWriter) -> tuple[str, str]:
    """(per-peer cap key, address:port for logs)."""
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return peer_key(str(peer[0])), f"{peer[0]}:{peer[1]}"
    return "unknown", str(peer or "unknown")


class _Timeout(Exception):
    def __init__(self, kind: str) -> None:
        self.kind = kind


class MllpServer:
    def __init__(
        self, handler: FrameHandler, limits: Limits | None = None, *, ssl: ssl.SSLContext | None = None
    ) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.ssl = ssl
        self.stats = Stats()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._per_peer: dict[str, int] = {}

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        sockname = self._server.sockets[0].getsockname()
        return int(sockname[1])

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(
            self._client,
            host,
            port,
            ssl=self.ssl,
            ssl_handshake_timeout=self.limits.frame_timeout_s if self.ssl else None,
            limit=self.limits.read_chunk,
        )
        log.info("mllp.listening", host=host, port=self.port, tls=self.ssl is not None)

    async def serve_forever(self) -> None:
        assert self._server is not None, "server not started"
        await self._server.serve_forever()

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), timeout=5)
        self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address, peer = _peer_name(writer)
        refusal = None
        if len(self._tasks) >= self.limits.max_connections:
            refusal = "max_connections"
        elif self._per_peer.get(address, 0) >= self.limits.max_connections_per_peer:
            refusal = "max_connections_per_peer"
        if refusal is not None:
            self.stats.refused += 1
            metrics.MLLP_CONNECTIONS.labels(outcome="refused").inc()
            log.warning("mllp.connection_refused", peer=peer, reason=refusal)
            await self._close(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._per_peer[address] = self._per_peer.get(address, 0) + 1
        self.stats.connections += 1
        metrics.MLLP_CONNECTIONS.labels(outcome="accepted").inc()
        metrics.MLLP_ACTIVE.inc()
        log.info("mllp.connected", peer=peer)
        try:
            await self._serve(reader, writer, peer)
        except _Timeout as exc:
            self.stats.timeouts += 1
            metrics.MLLP_TIMEOUTS.labels(kind=exc.kind).inc()
            log.info("mllp.timeout", peer=peer, kind=exc.kind)
        except (ConnectionError, ssl.SSLError) as exc:
            log.info("mllp.connection_lost", peer=peer, error=type(exc).__name__)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad connection must not stop the listener
            self.stats.handler_errors += 1
            log.error("mllp.handler_failed", peer=peer, error=type(exc).__name__)
        finally:
            metrics.MLLP_ACTIVE.dec()
            self._tasks.discard(task)
            left = self._per_peer.pop(address) - 1
            if left:
                self._per_peer[address] = left
            await self._close(writer)
            log.info("mllp.disconnected", peer=peer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        limits = self.limits
        decoder = FrameDecoder(limits.max_message_bytes)
        # Both clocks move only when a message completes: neither a restarted frame nor bytes
        # between frames buy a peer more time (a slot held by trickling costs the real EHR one).
        idle_deadline = time.monotonic() + limits.idle_timeout_s if limits.idle_timeout_s else None
        message_deadline: float | None = None
        while True:
            if decoder.in_frame:
                assert message_deadline is not None
                deadline: float | None = message_deadline
                kind = "frame"
            else:
                deadline, kind = idle_deadline, "idle"
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                data = await asyncio.wait_for(reader.read(limits.read_chunk), timeout)
            except TimeoutError:
                raise _Timeout(kind) from None
            self.stats.reads += 1
            if not data:
                if decoder.in_frame:
                    log.info("mllp.truncated_frame", peer=peer)
                return
            for event in decoder.feed(data):
                if isinstance(event, Frame):
                    self.stats.frames += 1
                    reply = await self.handler.on_frame(event.payload, peer)
                elif isinstance(event, Oversize):
                    self.stats.oversize += 1
                    metrics.MLLP_OVERSIZE.inc()
                    log.warning("mllp.oversize", peer=peer, size=event.size, limit=limits.max_message_bytes)
                    reply = await self.handler.on_oversize(event.head, event.size, peer)
                else:
                    assert isinstance(event, Garbage)
                    self.stats.garbage_bytes += event.size
                    metrics.MLLP_GARBAGE_BYTES.inc(event.size)
                    log.info("mllp.garbage_skipped", peer=peer, bytes=event.size)
                    continue
                if reply is None:
                    return
                writer.write(encode_frame(reply))
                try:
                    await asyncio.wait_for(writer.drain(), limits.frame_timeout_s)
                except TimeoutError:
                    raise _Timeout("write") from None
                message_deadline = None
                if limits.idle_timeout_s:
                    idle_deadline = time.monotonic() + limits.idle_timeout_s
            if decoder.in_frame and message_deadline is None:
                # The first start byte since the last complete message: the message's clock starts.
                message_deadline = time.monotonic() + limits.frame_timeout_s

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), timeout=2)
