"""Helpers for HL7 tests: sample files, a tenant with a mapped facility, the real listener on a
loopback socket in its own thread, and a plain-socket MLLP peer."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from vitalbridge.hl7v2.files import split_messages
from vitalbridge.hl7v2.inbound import InboundConfig, InboundProcessor
from vitalbridge.hl7v2.listener import InboundFrameHandler
from vitalbridge.hl7v2.mllp.framing import Frame, FrameDecoder, encode_frame
from vitalbridge.hl7v2.mllp.server import FrameHandler, Limits, MllpServer
from vitalbridge.runtime import Hub
from vitalbridge.tenancy import service
from vitalbridge.tenancy.schemas import PracticeIn

DATA = Path(__file__).resolve().parent.parent / "data" / "hl7"
FACILITY = "NORTHCLINIC"


def sample(name: str) -> list[bytes]:
    """The messages of a sample file, as the CLI would send them."""
    return split_messages((DATA / name).read_bytes())


def one(name: str) -> bytes:
    (message,) = sample(name)
    return message


@dataclass
class Site:
    org_id: str
    practice_id: str


def make_site(hub: Hub, org: str = "Org A", facility: str | None = FACILITY, code: str = "P1") -> Site:
    with hub.sessions() as session, session.begin():
        org_row = service.create_organization(session, org)
        practice = service.add_practice(
            session,
            org_row.id,
            PracticeIn(
                practice_code=code,
                fhir_base_url="https://fhir.example.org/fhir/r4/" + code,  # type: ignore[arg-type]
                token_url="https://oauth.example.org/token",  # type: ignore[arg-type]
                # One EHR client per organization: a second organization may not claim it.
                client_id=f"client-{org}",
                hl7_sending_facility=facility,
            ),
            None,
            hub.settings,
        )
        return Site(org_row.id, practice.id)


class LoopThread:
    """An MLLP server running on its own event loop in a background thread."""

    def __init__(self, handler: FrameHandler, limits: Limits | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.server = MllpServer(handler, limits or Limits(frame_timeout_s=10, idle_timeout_s=30), ssl=tls)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.start("127.0.0.1", 0))
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.server.stop())
        self.loop.close()

    @property
    def port(self) -> int:
        return self.server.port

    def __enter__(self) -> LoopThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("MLLP server did not start")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def listener(hub: Hub, limits: Limits | None = None, tls: ssl.SSLContext | None = None) -> LoopThread:
    """The hub's real inbound pipeline behind a real MLLP server."""
    config = InboundConfig.from_settings(hub.settings)
    if limits is not None:
        config = InboundConfig(config.default_charset, config.identity, limits.max_message_bytes)
    return LoopThread(InboundFrameHandler(InboundProcessor(hub, config)), limits, tls)


class Peer:
    """A blocking MLLP client on a plain socket, for byte-level control of what is sent."""

    def __init__(
        self, port: int, *, timeout: float = 15.0, tls: ssl.SSLContext | None = None, source: str | None = None
    ) -> None:
        # ``source``: another loopback address (127.0.0.2 …) plays a second host on this machine.
        raw = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout, source_address=(source, 0) if source else None
        )
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock: socket.socket = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
        self.decoder = FrameDecoder(16 * 1024 * 1024)
        self.pending: list[bytes] = []

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, payload: bytes) -> None:
        self.sock.sendall(encode_frame(payload))

    def receive(self) -> bytes:
        """The next reply frame; raises on timeout or when the server closes first."""
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.pending += [e.payload for e in self.decoder.feed(data) if isinstance(e, Frame)]
        return self.pending.pop(0)

    def exchange(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.receive()

    def closed_by_server(self, within: float) -> bool:
        """True when the server closes the connection (EOF or reset) within ``within`` seconds."""
        self.sock.settimeout(within)
        deadline = time.monotonic() + within
        try:
            while time.monotonic() < deadline:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Peer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def ack_fields(ack: bytes) -> dict[str, list[str]]:
    """Segments of an ACK by id, each as its '|'-split fields (the tests' own independent reading)."""
    out: dict[str, list[str]] = {}
    for seg in ack.decode("latin-1").split("\r"):
        if seg:
            out[seg[:3]] = seg.split("|")
    return out
