"""The hub's MLLP listener: the MLLP server wired to the inbound processor (SPEC §4 HL7 v2 bullet).

Runs either inside the hub process (``VB_HL7_PORT`` set; started through ``vitalbridge.lifecycle``)
or on its own (``vitalbridge hl7 listen``). Message processing touches the database, so it runs in
a worker thread and never blocks the event loop that also serves the API.
"""

from __future__ import annotations

import asyncio
import ssl

from vitalbridge.errors import ConfigurationError
from vitalbridge.hl7v2.inbound import InboundConfig, InboundProcessor
from vitalbridge.hl7v2.mllp.server import Limits, MllpServer
from vitalbridge.hl7v2.mllp.tls import server_context
from vitalbridge.lifecycle import Stop
from vitalbridge.runtime import Hub
from vitalbridge.settings import Settings


class InboundFrameHandler:
    """``FrameHandler`` for the MLLP server: each frame goes through the ``InboundProcessor``."""

    def __init__(self, processor: InboundProcessor) -> None:
        self.processor = processor

    async def on_frame(self, payload: bytes, peer: str) -> bytes | None:
        return await asyncio.to_thread(self.processor.handle_frame, payload, peer)

    async def on_oversize(self, head: bytes, size: int, peer: str) -> bytes | None:
        return await asyncio.to_thread(self.processor.handle_oversize, head, size, peer)


def limits_from_settings(settings: Settings) -> Limits:
    return Limits(
        max_message_bytes=settings.hl7_max_message_bytes,
        frame_timeout_s=settings.hl7_frame_timeout_s,
        idle_timeout_s=settings.hl7_idle_timeout_s,
        max_connections=settings.hl7_max_connections,
        max_connections_per_peer=settings.hl7_max_connections_per_peer,
    )


def tls_from_settings(settings: Settings) -> ssl.SSLContext | None:
    if settings.hl7_tls_cert is None and settings.hl7_tls_key is None:
        if settings.hl7_tls_client_ca is not None:
            raise ConfigurationError("VB_HL7_TLS_CLIENT_CA needs VB_HL7_TLS_CERT and VB_HL7_TLS_KEY")
        return None
    if settings.hl7_tls_cert is None or settings.hl7_tls_key is None:
        raise ConfigurationError("MLLP over TLS needs both VB_HL7_TLS_CERT and VB_HL7_TLS_KEY")
    try:
        return server_context(settings.hl7_tls_cert, settings.hl7_tls_key, settings.hl7_tls_client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot load the MLLP TLS certificate or key: {type(exc).__name__}") from None


def build_listener(hub: Hub, *, tls: ssl.SSLContext | None = None) -> MllpServer:
    """An MLLP server for this hub (not yet started). ``tls`` defaults to the settings' certificate."""
    settings = hub.settings
    processor = InboundProcessor(hub, InboundConfig.from_settings(settings))
    return MllpServer(
        InboundFrameHandler(processor),
        limits_from_settings(settings),
        ssl=tls if tls is not None else tls_from_settings(settings),
    )


async def start_hl7_listener(hub: Hub) -> Stop:
    """``lifecycle`` starter: listens on ``VB_HL7_HOST:VB_HL7_PORT`` when the port is set."""
    port = hub.settings.hl7_port
    if not port:

        async def nothing() -> None:
            return None

        return nothing
    server = build_listener(hub)
    await server.start(hub.settings.hl7_host, port)
    hub.extras["hl7_listener"] = server
    return server.stop
