"""MLLP over TLS: certificates made in the test with ``cryptography``, real handshakes on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from tests.hl7.support import Peer, ack_fields, listener, make_site, sample
from vitalbridge.errors import ConfigurationError
from vitalbridge.hl7v2.errors import Hl7TransportError
from vitalbridge.hl7v2.listener import tls_from_settings
from vitalbridge.hl7v2.mllp.client import MllpClient
from vitalbridge.hl7v2.mllp.tls import client_context, server_context
from vitalbridge.hl7v2.models import Hl7Message
from vitalbridge.runtime import Hub
from vitalbridge.settings import Settings


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    path.mkdir(parents=True, exist_ok=True)
    (path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path / "cert.pem", path / "key.pem"


def make_cert(
    folder: Path,
    name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool = False,
) -> tuple[Path, Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    cert_path, key_path = _write(folder / name, cert, key)
    return cert_path, key_path, cert, key


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca_cert, _ca_key_path, ca, ca_key = make_cert(tmp_path, "test-ca", ca=True)
    server_cert, server_key, _c, _k = make_cert(tmp_path, "server", (ca, ca_key))
    client_cert, client_key, _c2, _k2 = make_cert(tmp_path, "client", (ca, ca_key))
    rogue_ca = make_cert(tmp_path, "rogue-ca", ca=True)
    rogue_cert, rogue_key, _c3, _k3 = make_cert(tmp_path, "rogue-client", (rogue_ca[2], rogue_ca[3]))
    return {
        "ca": ca_cert,
        "server_cert": server_cert,
        "server_key": server_key,
        "client_cert": client_cert,
        "client_key": client_key,
        "rogue_cert": rogue_cert,
        "rogue_key": rogue_key,
    }


def test_tls_round_trip(hub: Hub, pki: dict[str, Path]) -> None:
    make_site(hub)
    tls = server_context(pki["server_cert"], pki["server_key"])
    message = sample("adt_v2.5.1.hl7")[0]
    with listener(hub, tls=tls) as srv:
        with Peer(srv.port, tls=client_context(pki["ca"])) as peer:
            ack = peer.exchange(message)
        assert ack_fields(ack)["MSA"][1:3] == ["AA", "N251-0001"]

        async def via_client() -> bytes:
            async with MllpClient(
                "127.0.0.1", srv.port, ssl=client_context(pki["ca"]), server_hostname="localhost"
            ) as c:
                return await c.request(sample("adt_v2.5.1.hl7")[1], timeout=10)

        assert ack_fields(asyncio.run(via_client()))["MSA"][1] == "AA"
        # A plain-TCP client gets no ACK from a TLS port; an untrusting client refuses the server.
        with Peer(srv.port, timeout=5) as plain:
            plain.send(sample("adt_v2.5.1.hl7")[2])
            with pytest.raises((ConnectionError, TimeoutError, OSError)):
                plain.receive()
        with pytest.raises(ssl.SSLCertVerificationError):
            Peer(srv.port, tls=client_context())


def test_mutual_tls_requires_a_client_certificate_from_the_ca(hub: Hub, pki: dict[str, Path]) -> None:
    make_site(hub)
    tls = server_context(pki["server_cert"], pki["server_key"], client_ca=pki["ca"])
    with listener(hub, tls=tls) as srv:
        trusted = client_context(pki["ca"], pki["client_cert"], pki["client_key"])
        with Peer(srv.port, tls=trusted) as peer:
            assert ack_fields(peer.exchange(sample("adt_v2.4.hl7")[0]))["MSA"][1] == "AA"
        for ctx in (client_context(pki["ca"]), client_context(pki["ca"], pki["rogue_cert"], pki["rogue_key"])):
            assert _refused(srv.port, ctx, sample("adt_v2.4.hl7")[1])
    with hub.sessions() as session:
        assert session.scalars(select(Hl7Message.control_id)).all() == ["N24-0001"]


def _refused(port: int, ctx: ssl.SSLContext, message: bytes) -> bool:
    """True when the server ends the connection (handshake alert, reset or EOF) instead of answering."""
    try:
        with Peer(port, tls=ctx, timeout=5) as peer:
            peer.exchange(message)
    except OSError:  # SSLError and ConnectionError are both OSErrors
        return True
    return False


def test_mllp_client_reports_tls_failures_as_transport_errors(hub: Hub, pki: dict[str, Path]) -> None:
    make_site(hub)
    with listener(hub, tls=server_context(pki["server_cert"], pki["server_key"])) as srv:

        async def untrusting() -> None:
            async with MllpClient("127.0.0.1", srv.port, ssl=client_context()):
                pass

        with pytest.raises(Hl7TransportError, match="cannot connect"):
            asyncio.run(untrusting())


def test_tls_settings_are_checked(pki: dict[str, Path], tmp_path: Path) -> None:
    assert tls_from_settings(Settings()) is None
    ctx = tls_from_settings(Settings(hl7_tls_cert=pki["server_cert"], hl7_tls_key=pki["server_key"]))
    assert ctx is not None
    assert ctx.verify_mode is ssl.CERT_NONE
    ctx = tls_from_settings(
        Settings(hl7_tls_cert=pki["server_cert"], hl7_tls_key=pki["server_key"], hl7_tls_client_ca=pki["ca"])
    )
    assert ctx is not None
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    with pytest.raises(ConfigurationError, match="both"):
        tls_from_settings(Settings(hl7_tls_cert=pki["server_cert"]))
    with pytest.raises(ConfigurationError, match="CLIENT_CA"):
        tls_from_settings(Settings(hl7_tls_client_ca=pki["ca"]))
    with pytest.raises(ConfigurationError, match="cannot load"):
        tls_from_settings(Settings(hl7_tls_cert=tmp_path / "missing.pem", hl7_tls_key=pki["server_key"]))
