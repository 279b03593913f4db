"""An asyncio MLLP client: connect, send a frame, await the reply frame with a timeout, reconnect.

Transport only (no HL7 parsing): the caller says which reply frame is the answer it waits for
(``is_reply``), so a late ACK to an earlier message on the same connection is skipped, not taken
for this one. After a timeout the connection is closed, for the same reason: an answer that
arrives later must never be read as the answer to the next message.

Failures raise ``Hl7TransportError`` / ``Hl7AckTimeout`` (transient, from the error tree).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from types import TracebackType

from vitalbridge.hl7v2.errors import Hl7AckTimeout, Hl7TransportError
from vitalbridge.hl7v2.mllp.framing import Frame, FrameDecoder, encode_frame

DEFAULT_MAX_REPLY_BYTES = 1024 * 1024


class MllpClient:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout: float = 10.0,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.connect_timeout = connect_timeout
        self.max_reply_bytes = max_reply_bytes
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = FrameDecoder(max_reply_bytes)
        self._pending: list[bytes] = []
        self._lock = asyncio.Lock()
        # Replies skipped because they did not answer the message in flight.
        self.skipped_replies = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing() and not self._reader_at_eof()

    def _reader_at_eof(self) -> bool:
        return self._reader is not None and self._reader.at_eof()

    async def connect(self) -> None:
        await self.close()
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=(self.server_hostname or self.host) if self.ssl else None,
                ),
                self.connect_timeout,
            )
        except TimeoutError:
            raise Hl7TransportError(
                f"connecting to {self.address} timed out after {self.connect_timeout:g} s"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise Hl7TransportError(f"cannot connect to {self.address}: {type(exc).__name__}") from None
        self._decoder = FrameDecoder(self.max_reply_bytes)
        self._pending = []

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), timeout=2)

    async def __aenter__(self) -> MllpClient:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def request(
        self, payload: bytes, *, timeout: float, is_reply: Callable[[bytes], bool] | None = None
    ) -> bytes:
        """Send one message and return the payload of the first reply frame ``is_reply`` accepts.

        Reconnects first when the connection is closed. A message is never re-sent here once it may
        have reached the peer: that decision belongs to the caller (whose peer should dedupe by
        control id).
        """
        async with self._lock:
            if not self.connected:
                await self.connect()
            assert self._writer is not None
            try:
                self._writer.write(encode_frame(payload))
                await asyncio.wait_for(self._writer.drain(), timeout)
            except TimeoutError:
                await self.close()
                raise Hl7AckTimeout(f"sending to {self.address} timed out after {timeout:g} s") from None
            except (OSError, ssl.SSLError) as exc:
                await self.close()
                raise Hl7TransportError(
                    f"connection to {self.address} failed while sending: {type(exc).__name__}"
                ) from None
            try:
                return await self._await_reply(timeout, is_reply)
            except BaseException:
                # Timeout, connection loss or cancellation: the answer, if it ever comes, must not be
                # mistaken for the answer to the next message.
                await self.close()
                raise

    async def _await_reply(self, timeout: float, is_reply: Callable[[bytes], bool] | None) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            while self._pending:
                frame = self._pending.pop(0)
                if is_reply is None or is_reply(frame):
                    return frame
                self.skipped_replies += 1
            assert self._reader is not None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Hl7AckTimeout(f"no ACK from {self.address} within {timeout:g} s")
            try:
                data = await asyncio.wait_for(self._reader.read(64 * 1024), remaining)
            except TimeoutError:
                raise Hl7AckTimeout(f"no ACK from {self.address} within {timeout:g} s") from None
            except (OSError, ssl.SSLError) as exc:
                raise Hl7TransportError(
                    f"connection to {self.address} failed awaiting the ACK: {type(exc).__name__}"
                ) from None
            if not data:
                raise Hl7TransportError(f"{self.address} closed the connection before sending an ACK")
            self._pending += [e.payload for e in self._decoder.feed(data) if isinstance(e, Frame)]
