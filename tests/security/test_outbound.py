"""The connect-time SSRF guard: IPv6 transition forms and DNS rebinding, on every outbound client.

Names resolve through fixed tables (``Hub.resolver`` / ``OutboundPolicy.resolver``): no DNS query
leaves the machine. The "internal service" an attacker wants to reach is a real server on loopback
that records every request; a refused connection is one it never sees.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.readings_support import ADMIN, make_world
from tests.support import api_client, make_tenant
from vitalbridge.devices import gateway_service
from vitalbridge.devices.sync import sync_gateway
from vitalbridge.errors import UpstreamError, ValidationFailed
from vitalbridge.notify.background import build_sender
from vitalbridge.notify.fake_fcm import ServiceAccountKey
from vitalbridge.notify.fcm import SendOutcome
from vitalbridge.runtime import Hub
from vitalbridge.security.outbound import AddressRefused, OutboundAddressRefused, OutboundPolicy, guarded_transport
from vitalbridge.security.urls import check_outbound_url
from vitalbridge.servers import ServerThread
from vitalbridge.settings import Settings

STRICT = Settings(data_dir=Path("unused"), allow_private_urls=False)
PUBLIC = "93.184.215.14"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _numeric(host: str, port: int) -> list[Address]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


class Table:
    """A fixed DNS table; numeric hosts resolve without a query."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[Address]:
        self.lookups.append(host)
        if host in self.names:
            return [ipaddress.ip_address(a) for a in self.names[host]]
        return _numeric(host, port)


class Rebinding(Table):
    """Answers a public address until ``rebind()``, then loopback: DNS rebinding, as an attacker's
    authoritative server with a short TTL does it between registration and the worker's call."""

    def __init__(self, *hosts: str) -> None:
        super().__init__({h: [PUBLIC] for h in hosts})

    def rebind(self, to: str = "127.0.0.1") -> None:
        self.names = {h: [to] for h in self.names}


# -- IPv6 forms that carry an IPv4 address ---------------------------------------------------------

TRANSITION_REFUSED = [
    ("2002:7f00:1::", "6to4 of 127.0.0.1"),
    ("2002:a9fe:a9fe::1", "6to4 of 169.254.169.254 (cloud metadata)"),
    ("2002:a00:5::", "6to4 of 10.0.0.5"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo (client 127.0.0.1)"),
    ("2001:0:5db8:d70e:8000:63bf:a245:28f1", "Teredo with a public server"),
    ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254"),
    ("64:ff9b:1::a00:5", "local-use NAT64 (RFC 8215)"),
    ("64:ff9b:1:5db8:d7:e00::", "local-use NAT64, public-looking"),
    ("::ffff:a9fe:a9fe", "IPv4-mapped 169.254.169.254"),
    ("::ffff:10.0.0.5", "IPv4-mapped 10.0.0.5"),
    ("::7f00:1", "IPv4-compatible 127.0.0.1"),
    ("::5db8:d70e", "IPv4-compatible (deprecated) of a public address"),
]

TRANSITION_ALLOWED = [
    ("64:ff9b::5db8:d70e", "NAT64 of a public address (DNS64 on an IPv6-only host)"),
    ("2002:5db8:d70e::1", "6to4 of a public address"),
    ("::ffff:5db8:d70e", "IPv4-mapped public address"),
]


@pytest.mark.parametrize(("address", "form"), TRANSITION_REFUSED)
def test_transition_forms_are_judged_by_the_ipv4_inside(address: str, form: str) -> None:
    with pytest.raises(ValidationFailed, match="private, loopback"):
        check_outbound_url(f"https://[{address}]/fhir", STRICT, field="fhir_base_url")
    # The same rule at connect time, for a literal and for a name whose AAAA record is that form.
    policy = OutboundPolicy(resolver=Table({"aaaa.example.test": [address]}))
    for host in (address, "aaaa.example.test"):
        with pytest.raises(AddressRefused):
            policy.addresses(host, 443)
    with pytest.raises(ValidationFailed, match="private, loopback"):
        check_outbound_url("https://aaaa.example.test/", STRICT, resolver=policy.resolver)


@pytest.mark.parametrize(("address", "form"), TRANSITION_ALLOWED)
def test_transition_forms_of_public_addresses_pass(address: str, form: str) -> None:
    assert check_outbound_url(f"https://[{address}]/fhir", STRICT)
    assert OutboundPolicy().addresses(address, 443) == [ipaddress.ip_address(address)]


def test_one_refused_answer_refuses_the_name() -> None:
    # An attacker's resolver can order its answers; a connection may go to any of them.
    policy = OutboundPolicy(resolver=Table({"mixed.example.test": [PUBLIC, "10.0.0.5"]}))
    with pytest.raises(AddressRefused):
        policy.addresses("mixed.example.test", 443)
    assert OutboundPolicy(allow_private=True, resolver=policy.resolver).addresses("mixed.example.test", 443)


# -- a recording "internal service" -----------------------------------------------------------------


class Recorder:
    """An ASGI app that answers 200 and remembers each request's Host header and path."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        self.seen.append((headers.get(b"host", b"").decode(), scope["path"]))
        body = b'{"error":"invalid_client"}'
        await send({"type": "http.response.start", "status": 400, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def test_guarded_transport_refuses_a_rebound_name_and_connects_to_the_checked_address() -> None:
    recorder = Recorder()
    with ServerThread(recorder) as url:
        port = int(url.rsplit(":", 1)[1])
        resolver = Rebinding("internal.example.test")
        resolver.rebind()
        strict = httpx.Client(transport=guarded_transport(OutboundPolicy(resolver=resolver)))
        with strict, pytest.raises(OutboundAddressRefused):
            strict.get(f"http://internal.example.test:{port}/latest/meta-data/")
        assert recorder.seen == []
        # Where private targets are allowed (the sandbox), the name still resolves through the
        # policy's resolver, and the request keeps its Host.
        lenient = httpx.Client(transport=guarded_transport(OutboundPolicy(allow_private=True, resolver=resolver)))
        with lenient:
            assert lenient.get(f"http://internal.example.test:{port}/x").status_code == 400
        assert recorder.seen == [(f"internal.example.test:{port}", "/x")]


# -- the EHR: registration sees a public address, the worker's call sees loopback -----------------


def test_rebinding_after_registration_never_reaches_the_internal_address(hub: Hub) -> None:
    hub.settings = hub.settings.model_copy(update={"allow_private_urls": False})
    resolver = Rebinding("ehr.rebind.test")
    hub.resolver = resolver
    tenant = make_tenant(hub, "Org A")
    recorder = Recorder()
    with ServerThread(recorder) as url, api_client(hub) as client:
        port = int(url.rsplit(":", 1)[1])
        body = {
            "practice_code": "REBIND",
            "fhir_base_url": f"http://ehr.rebind.test:{port}/fhir/r4/REBIND",
            "token_url": f"http://ehr.rebind.test:{port}/oauth/token",
            "client_id": "rebind-client",
            "auth_method": "client_secret_basic",
            "client_secret": "s3cret-value",
        }
        assert client.post("/api/v1/practices/", json=body, headers=tenant.headers).status_code == 201
        assert "ehr.rebind.test" in resolver.lookups  # the store-time check asked the hub's resolver
        resolver.rebind()
        for route in ("/api/v1/ecw/test/jwt/", "/api/v1/ecw/test/connection/"):
            resp = client.post(route, json={"practice": "REBIND"}, headers=tenant.headers)
            assert resp.status_code == 200, resp.text
            assert resp.json()["status"] == "error"
            assert "OutboundAddressRefused" in resp.json()["detail"]  # refused by the guard, not by the peer
            assert "127.0.0.1" not in resp.text
    assert recorder.seen == []


def test_sandbox_on_loopback_still_works_when_private_urls_are_allowed(hub: Hub) -> None:
    # `make run` and the test suite set VB_ALLOW_PRIVATE_URLS=true; the guard lets loopback through.
    assert hub.settings.allow_private_urls
    hub.resolver = Rebinding("ehr.rebind.test")
    hub.resolver.rebind()
    tenant = make_tenant(hub, "Org A")
    recorder = Recorder()
    with ServerThread(recorder) as url, api_client(hub) as client:
        port = int(url.rsplit(":", 1)[1])
        body = {
            "practice_code": "LOCAL",
            "fhir_base_url": f"http://ehr.rebind.test:{port}/fhir/r4/LOCAL",
            "token_url": f"http://ehr.rebind.test:{port}/oauth/token",
            "client_id": "local-client",
            "auth_method": "client_secret_basic",
            "client_secret": "s3cret-value",
        }
        assert client.post("/api/v1/practices/", json=body, headers=tenant.headers).status_code == 201
        resp = client.post("/api/v1/ecw/test/jwt/", json={"practice": "LOCAL"}, headers=tenant.headers)
        assert resp.json()["status"] == "error"  # the recorder refuses the client; it was reached
    assert recorder.seen == [(f"ehr.rebind.test:{port}", "/oauth/token")]


# -- FCM ------------------------------------------------------------


def test_fcm_endpoint_rebound_to_loopback_is_not_called(tmp_path: Path) -> None:
    recorder = Recorder()
    with ServerThread(recorder) as url:
        port = int(url.rsplit(":", 1)[1])
        account = ServiceAccountKey("vb-test-project")
        credentials = tmp_path / "fcm.json"
        account.write(credentials, f"http://fcm.rebind.test:{port}/token")
        settings = STRICT.model_copy(
            update={"fcm_credentials_file": credentials, "fcm_endpoint": f"http://fcm.rebind.test:{port}"}
        )
        resolver = Rebinding("fcm.rebind.test")
        resolver.rebind()
        sender = build_sender(settings, OutboundPolicy.from_settings(settings, resolver))
        assert sender is not None
        try:
            result = sender.send({"message": {"token": "t", "data": {"type": "alert"}}})
        finally:
            sender.close()
        assert result.outcome is SendOutcome.retry
        assert "OutboundAddressRefused" in (result.operator_message or "")
    assert recorder.seen == []


# -- TLS: the checked address is dialled, the name is verified --------------------------------------


def _cert_for(folder: Path, name: str) -> tuple[Path, Path, Path]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "outbound-test-ca")])
    now = datetime.now(UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        # Only the name: a client that verified the address it dialled (127.0.0.1) would fail.
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "ca.pem", folder / "cert.pem", folder / "key.pem"


@contextmanager
def https_server(cert: Path, key: Path) -> Iterator[tuple[int, list[str], list[str]]]:
    """An HTTPS server on 127.0.0.1 that records the SNI names and Host headers it receives."""
    snis: list[str] = []
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hosts.append(self.headers.get("Host", ""))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            return None

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: snis.append(name or "") and None
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], snis, hosts
    finally:
        server.shutdown()
        server.server_close()


def test_tls_keeps_the_host_name_for_sni_and_certificate_checks(tmp_path: Path) -> None:
    ca, cert, key = _cert_for(tmp_path / "pki", "ehr.clinic.test")
    trust = ssl.create_default_context(cafile=str(ca))
    resolver = Table({"ehr.clinic.test": ["127.0.0.1"], "other.clinic.test": ["127.0.0.1"]})
    policy = OutboundPolicy(allow_private=True, resolver=resolver)
    with (
        https_server(cert, key) as (port, snis, hosts),
        httpx.Client(transport=guarded_transport(policy, verify=trust)) as client,
    ):
        assert client.get(f"https://ehr.clinic.test:{port}/metadata").status_code == 200
        assert snis == ["ehr.clinic.test"]
        assert hosts == [f"ehr.clinic.test:{port}"]
        # Another name on the same address gets its own handshake, verified against that name.
        with pytest.raises(httpx.ConnectError):
            client.get(f"https://other.clinic.test:{port}/metadata")
    assert resolver.lookups == ["ehr.clinic.test", "other.clinic.test"]


# -- a gateway's pull API ----------------------------------------------------------------------------


def test_gateway_api_rebound_to_loopback_is_not_called(hub: Hub) -> None:
    world = make_world(hub)
    hub.settings = hub.settings.model_copy(update={"allow_private_urls": False})
    hub.resolver = Rebinding("gateway.rebind.test")
    hub.resolver.rebind()
    recorder = Recorder()
    start = datetime(2025, 3, 1, tzinfo=UTC)
    with ServerThread(recorder) as url:
        port = int(url.rsplit(":", 1)[1])
        with hub.sessions() as session, session.begin():
            gateway_service.set_api(
                session,
                hub.sealer,
                world.gateway_id,
                api_base_url=f"http://gateway.rebind.test:{port}",
                api_key="k",
                actor=ADMIN,
            )
        with pytest.raises(UpstreamError, match="OutboundAddressRefused"):
            sync_gateway(hub, world.gateway_id, start, start + timedelta(days=1))
    assert recorder.seen == []
