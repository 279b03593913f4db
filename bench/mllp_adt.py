"""MLLP ADT feed throughput: one connection, each message waiting for its ACK (``python -m bench.mllp_adt``).

SPEC §4 (HL7 v2) promises that an ACK means "stored": the raw message and its outcome are
committed before the ACK leaves. This measures what that costs on one connection:

- **hub**: ``--n`` A08 updates (over ``--patients`` registry patients, so most are real updates)
  through the hub's real listener (``InboundProcessor`` behind ``MllpServer``), one at a time,
  each waiting for its ACK;
- **baseline**: the same messages, the same MLLP server and client, but a handler that only reads
  MSH and answers AA (no database) — the transport's ceiling on this machine in this run.

Both run in this process, the server on its own event loop thread, the client on a plain
blocking socket. Output: the two rates, their ratio, and one JSON line (for collecting runs).

Options: ``--n`` (5000), ``--patients`` (500), ``--database-url`` (default: a fresh SQLite file;
pass a scratch PostgreSQL URL to measure that), ``--goal`` (1000 msg/s: the acceptance threshold
the report checks).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

from vitalbridge.db.migrate import upgrade
from vitalbridge.hl7v2.ack import AckOutcome, build_ack
from vitalbridge.hl7v2.inbound import InboundConfig, InboundProcessor
from vitalbridge.hl7v2.listener import InboundFrameHandler
from vitalbridge.hl7v2.mllp.framing import Frame, FrameDecoder, encode_frame
from vitalbridge.hl7v2.mllp.server import FrameHandler, Limits, MllpServer
from vitalbridge.hl7v2.parsing import read_header
from vitalbridge.observability.logging import configure_logging
from vitalbridge.runtime import build_hub
from vitalbridge.settings import Settings
from vitalbridge.tenancy import service
from vitalbridge.tenancy.schemas import PracticeIn

FACILITY = "BENCHCLINIC"
SECRET = "bench-kek-not-for-production"


def a08(n: int, patients: int) -> bytes:
    mrn = f"M{n % patients:06d}"
    return (
        f"MSH|^~\\&|BENCHADT|{FACILITY}|VITALBRIDGE|VITALBRIDGE|20240601080000||ADT^A08^ADT_A01|B-{n}|P|2.5.1\r"
        f"EVN|A08|20240601080000\r"
        f"PID|1||{mrn}^^^{FACILITY}^MR||Benchname^Pat{n % 97}||19600101|F|||1 Main St^^Springfield^IL^62701||"
        f"555-0100\r"
    ).encode()


class EchoAck:
    """The baseline handler: read MSH, answer AA; nothing stored."""

    async def on_frame(self, payload: bytes, peer: str) -> bytes | None:
        return build_ack(read_header(payload), AckOutcome.accept()).payload

    async def on_oversize(self, head: bytes, size: int, peer: str) -> bytes | None:
        return None


class ServerThread:
    def __init__(self, handler: FrameHandler) -> None:
        self.server = MllpServer(handler, Limits(frame_timeout_s=60, idle_timeout_s=600))
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

    def __enter__(self) -> int:
        self._thread.start()
        if not self._ready.wait(10):
            raise SystemExit("the MLLP server did not start")
        return self.server.port

    def __exit__(self, *_exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def send_all(port: int, messages: list[bytes]) -> float:
    """Send each message and wait for its ACK; returns messages per second. Every ACK must be AA."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    decoder = FrameDecoder(1024 * 1024)
    pending: list[bytes] = []
    started = time.perf_counter()
    try:
        for message in messages:
            sock.sendall(encode_frame(message))
            while not pending:
                data = sock.recv(65536)
                if not data:
                    raise SystemExit("the server closed the connection")
                pending += [e.payload for e in decoder.feed(data) if isinstance(e, Frame)]
            ack = pending.pop(0)
            if b"MSA|AA|" not in ack:
                raise SystemExit(f"not accepted: {ack[:200]!r}")
    finally:
        sock.close()
    return len(messages) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--goal", type=float, default=1000.0)
    args = parser.parse_args(argv)
    messages = [a08(i, args.patients) for i in range(args.n)]
    with tempfile.TemporaryDirectory(prefix="vb-mllp-bench-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        settings = Settings(
            database_url=url,
            data_dir=Path(tmp) / "data",
            secret_key=SECRET,  # type: ignore[arg-type]
            inprocess_worker=False,
            allow_private_urls=True,  # the practice URLs are never called: the bench runs offline
        )
        # The servers' logging (ECW_LOG_LEVEL, INFO by default), written nowhere: the cost of
        # formatting each line counts, the terminal's speed does not.
        sink = open(os.devnull, "w")  # noqa: SIM115 - closed below
        configure_logging(settings, stream=sink)
        hub = build_hub(settings)
        try:
            with hub.sessions() as session, session.begin():
                org = service.create_organization(session, f"MLLP bench {time.time_ns()}")
                service.add_practice(
                    session,
                    org.id,
                    PracticeIn(
                        practice_code=f"MB{time.time_ns() % 10**8}",
                        fhir_base_url="https://127.0.0.1/fhir/r4/bench",  # type: ignore[arg-type]
                        token_url="https://127.0.0.1/oauth/token",  # type: ignore[arg-type]
                        client_id=f"mllp-bench-{time.time_ns()}",
                        hl7_sending_facility=FACILITY,
                    ),
                    None,
                    hub.settings,
                )
            with ServerThread(EchoAck()) as port:
                baseline = send_all(port, messages)
            processor = InboundProcessor(hub, InboundConfig.from_settings(hub.settings))
            with ServerThread(InboundFrameHandler(processor)) as port:
                rate = send_all(port, messages)
        finally:
            hub.close()
            sink.close()
    backend = url.split(":", 1)[0].split("+", 1)[0]
    ratio = rate / baseline
    print(f"bare MLLP ACK server: {baseline:9,.0f} msg/s")
    print(f"hub (stored, applied): {rate:8,.0f} msg/s  ({1000 / rate:.2f} ms per message)")
    ok = rate >= args.goal
    print(f"{'PASS' if ok else 'FAIL'}: hub/bare = {ratio:.3f}; goal {args.goal:,.0f} msg/s on one connection")
    print(
        json.dumps(
            {
                "bench": "mllp_adt",
                "backend": backend,
                "messages": args.n,
                "baseline_msg_s": round(baseline, 1),
                "hub_msg_s": round(rate, 1),
                "ratio": round(ratio, 4),
                "goal_msg_s": args.goal,
                "pass": ok,
            }
        )
    )


if __name__ == "__main__":
    main()
