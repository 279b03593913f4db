"""Connect-time SSRF guard: resolve once, check every address, connect only to a checked one.

``check_outbound_url`` judges a URL when it is stored; a host name can resolve differently a
minute later (DNS rebinding: a public address at registration, ``127.0.0.1`` or
``169.254.169.254`` when the worker calls it with credentials). So every outbound client of the
hub resolves the host itself at connect time, refuses the connection when *any* answer is not a
public address (an attacker's resolver may order its answers), and then connects to one of the
addresses it checked — never resolving the name a second time. TLS is unchanged: the handshake
still sends the host name (SNI) and the certificate is verified against it, and ``Host`` is the
URL's.

* ``OutboundPolicy`` — the rule (``VB_ALLOW_PRIVATE_URLS``) and the resolver (the system's; tests
  pass a fixed table and never query DNS off the machine).
* ``guarded_transport`` — an ``httpx`` transport whose connections go through the policy
  (httpcore network backend); used for the EHR (FHIR, token, discovery, revocation), FCM and
  gateway APIs.

(The practice's HL7 results interface is not guarded: the operator sets it with ``vitalbridge hl7
configure`` — tenants cannot — and it lives on a private network or VPN by design.)

Connections through an HTTP proxy are not made: a client with a guarded transport ignores
``HTTPS_PROXY`` (the proxy would resolve the name, out of the guard's sight).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpcore
import httpx

from vitalbridge.security.urls import Resolver, is_public_address, system_resolver
from vitalbridge.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# httpx's own defaults.
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class AddressRefused(OSError):
    """The host resolved to an address the policy refuses (or did not resolve).

    An ``OSError`` like any unreachable peer. The message names neither the URL nor the addresses.
    """


class OutboundAddressRefused(httpx.ConnectError):
    """``AddressRefused`` as ``httpx`` callers see it: a ``ConnectError``, handled wherever an
    unreachable EHR, gateway or FCM already is."""


@dataclass(frozen=True)
class OutboundPolicy:
    allow_private: bool = False
    resolver: Resolver = field(default=system_resolver)

    @classmethod
    def from_settings(cls, settings: Settings, resolver: Resolver | None = None) -> OutboundPolicy:
        return cls(allow_private=settings.allow_private_urls, resolver=resolver or system_resolver)

    def addresses(self, host: str, port: int) -> list[Address]:
        """The addresses to connect to, in the resolver's order; raise when any is refused."""
        try:
            found: list[Address] = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            try:
                found = self.resolver(host, port)
            except (OSError, UnicodeError):
                raise AddressRefused("the host name does not resolve") from None
        if not found:
            raise AddressRefused("the host name does not resolve")
        if not self.allow_private and not all(is_public_address(ip) for ip in found):
            raise AddressRefused(
                "refused to connect: the host resolves to a private, loopback, link-local or reserved "
                "address (set VB_ALLOW_PRIVATE_URLS=true for a sandbox on a private network)"
            )
        return found


class _GuardedBackend(httpcore.SyncBackend):
    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self.policy.addresses(host, port)
        except AddressRefused as exc:
            raise OutboundAddressRefused(str(exc)) from None
        failure: Exception | None = None
        for ip in addresses:
            try:
                return super().connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # try the next checked address, as socket.create_connection would
        assert failure is not None
        raise failure


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(
        self, policy: OutboundPolicy, *, verify: ssl.SSLContext | bool, limits: httpx.Limits, retries: int
    ) -> None:
        super().__init__(verify=verify, limits=limits, retries=retries)
        # httpx's transport takes no network backend; it only delegates to this pool, so the pool
        # is built again, identically, with the guarded backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            retries=retries,
            network_backend=_GuardedBackend(policy),
        )


def guarded_transport(
    policy: OutboundPolicy,
    *,
    verify: ssl.SSLContext | bool = True,
    limits: httpx.Limits = _LIMITS,
    retries: int = 0,
) -> httpx.BaseTransport:
    """An ``httpx`` transport that connects only to addresses ``policy`` accepts."""
    return _GuardedTransport(policy, verify=verify, limits=limits, retries=retries)
