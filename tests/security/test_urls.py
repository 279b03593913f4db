"""The SSRF guard on tenant-configured URLs."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

from tests.support import api_client, make_tenant
from vitalbridge.errors import ValidationFailed
from vitalbridge.runtime import Hub
from vitalbridge.security.urls import check_outbound_url
from vitalbridge.settings import Environment, Settings

STRICT = Settings(data_dir=Path("unused"), allow_private_urls=False)
OPEN = Settings(data_dir=Path("unused"), allow_private_urls=True)
PROD = Settings(data_dir=Path("unused"), allow_private_urls=False, ecw_environment=Environment.production)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://ehr.example/", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "only http and https"),
        ("https://user:pw@93.184.215.14/", "credentials"),
        ("http://127.0.0.1:5432/", "private"),
        ("http://localhost/", "this machine"),
        ("http://app.localhost/", "this machine"),
        ("http://169.254.169.254/latest/meta-data/", "private"),  # cloud metadata
        ("http://10.1.2.3/", "private"),
        ("http://192.168.0.1/", "private"),
        ("http://[::1]/", "private"),
        ("http://[::ffff:127.0.0.1]/", "private"),
        ("http://[fe80::1]/", "private"),
        ("http://0.0.0.0/", "private"),
        ("http://224.0.0.1/", "private"),
        ("http://240.0.0.1/", "private"),
        ("http://100.64.0.1/", "private"),  # carrier-grade NAT
        ("http://2130706433/", "private"),  # 127.0.0.1 as one integer: resolves to loopback
        ("https:///nohost", "no host"),
        ("http://host:99999/", "not a valid URL"),
        ("https://no-such-host.invalid/", "does not resolve"),
        ("https://internal.clinic.test/fhir", "private"),  # a public-looking name pointing inside
    ],
)
def test_refused_targets(url: str, why: str) -> None:
    with pytest.raises(ValidationFailed, match=why) as err:
        check_outbound_url(url, STRICT, field="token_url", resolver=_names)
    assert err.value.field_errors[0].loc == ("body", "token_url")
    # The message never repeats the URL (it may hold a pasted secret).
    assert url not in str(err.value)


def _names(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """A fixed DNS table: tests never query a resolver off this machine."""
    table = {"internal.clinic.test": ["10.0.0.5"], "ehr.clinic.test": ["93.184.215.14"]}
    if host in table:
        return [ipaddress.ip_address(a) for a in table[host]]
    # Numeric forms (e.g. one integer for an IPv4 address) resolve without a DNS query.
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def test_names_resolving_to_public_addresses_pass() -> None:
    assert check_outbound_url("https://ehr.clinic.test/fhir/r4/A", STRICT, resolver=_names)


def test_public_addresses_pass_and_production_needs_https() -> None:
    assert check_outbound_url("https://93.184.215.14/fhir/r4/ABC", STRICT) == "https://93.184.215.14/fhir/r4/ABC"
    assert check_outbound_url("http://93.184.215.14/", STRICT)
    with pytest.raises(ValidationFailed, match="production requires https"):
        check_outbound_url("http://93.184.215.14/", PROD)
    assert check_outbound_url("https://93.184.215.14/", PROD)


def test_sandbox_switch_allows_private_but_not_other_schemes() -> None:
    assert check_outbound_url("http://127.0.0.1:9090/fhir/r4/JAFJCD", OPEN)
    with pytest.raises(ValidationFailed, match="only http and https"):
        check_outbound_url("file:///etc/passwd", OPEN)
    with pytest.raises(ValidationFailed, match="credentials"):
        check_outbound_url("http://a:b@127.0.0.1/", OPEN)


def test_practice_registration_names_the_refused_field(hub: Hub) -> None:
    hub.settings = hub.settings.model_copy(update={"allow_private_urls": False})
    tenant = make_tenant(hub, "Org A")
    body = {
        "practice_code": "SSRF",
        "fhir_base_url": "https://93.184.215.14/fhir/r4/SSRF",
        "token_url": "http://169.254.169.254/latest/meta-data/iam",
        "client_id": "c",
    }
    with api_client(hub) as client:
        resp = client.post("/api/v1/practices/", json=body, headers=tenant.headers)
        assert resp.status_code == 422, resp.text
        assert resp.json()["errors"][0]["loc"] == ["body", "token_url"]
        prod = {**body, "token_url": "https://93.184.215.14/token", "environment": "production"}
        prod["authorize_url"] = "http://93.184.215.14/authorize"
        resp = client.post("/api/v1/practices/", json=prod, headers=tenant.headers)
        assert resp.status_code == 422
        assert resp.json()["errors"][0]["loc"] == ["body", "authorize_url"]
        ok = client.post("/api/v1/practices/", json={**prod, "authorize_url": None}, headers=tenant.headers)
        assert ok.status_code == 201, ok.text
