"""TLS for MLLP ("MLLPS"): server and client contexts from PEM files.

TLS 1.2 is the floor, as eCW and most interface partners require; the server asks for client
certificates only when a client CA is configured, and then refuses connections without one.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile=str(cert), keyfile=str(key))
    if client_ca is not None:
        ctx.load_verify_locations(cafile=str(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(
    ca: Path | None = None, cert: Path | None = None, key: Path | None = None, *, verify: bool = True
) -> ssl.SSLContext:
    """Verifies the server against ``ca`` (else the system store); presents ``cert`` when given."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        # Only for a lab peer with a throwaway certificate; the CLI prints a warning.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key) if key else None)
    return ctx
