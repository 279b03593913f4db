"""SSRF guard (SPEC §2: per-practice URLs) for every URL a tenant or operator configures (practice
FHIR base, token and authorize URLs; gateway APIs; FCM; the practice's HL7 interface).

A tenant admin types a URL; the hub's workers then call it with credentials, from inside the
hosting network. Without a guard that is a way to reach cloud metadata services, databases or
admin consoles on private addresses. The rule: ``http``/``https`` only, no user-info, a host
that resolves only to public unicast addresses; ``https`` required in production. The sandbox
and tests (which live on loopback) set ``VB_ALLOW_PRIVATE_URLS=true``.

IPv6 forms that carry an IPv4 address are judged by that address (RFC 6052 NAT64 ``64:ff9b::/96``,
RFC 3056 6to4 ``2002::/16``, IPv4-mapped ``::ffff:0:0/96``); forms whose embedded address cannot be
read reliably or that no EHR uses are refused (RFC 8215 local-use NAT64 ``64:ff9b:1::/48``, RFC 4380
Teredo ``2001::/32``, deprecated IPv4-compatible ``::/96``).

``check_outbound_url`` runs when a URL is stored. DNS can change afterwards (rebinding: public when
stored, ``127.0.0.1`` when called), so every outbound client also checks each address at connect
time and connects only to a checked one (``vitalbridge.security.outbound``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from vitalbridge.errors import FieldError, ValidationFailed
from vitalbridge.settings import Environment, Settings

_SCHEMES = ("http", "https")


def _refuse(field: str, why: str) -> ValidationFailed:
    # The URL itself is not repeated: it may carry credentials the tenant pasted by mistake.
    return ValidationFailed(f"{field}: {why}", [FieldError(("body", field), why, "url_refused")])


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix: the last 32 bits
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: local use, any prefix length
_TEREDO = ipaddress.IPv6Network("2001::/32")  # RFC 4380: a tunnel to a host behind NAT
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 §2.5.5.1, deprecated


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True when the hub may connect to ``ip``: public unicast, and so is any IPv4 address inside it."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if ip in _NAT64:
            # A DNS64 resolver maps every IPv4 name into this prefix: judge the IPv4 it stands for.
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip in _NAT64_LOCAL or ip in _TEREDO or ip in _IPV4_COMPATIBLE:
            return False
        if ip.sixtofour is not None and not is_public_address(ip.sixtofour):
            return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def system_resolver(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


# Host name → addresses; the system resolver by default. Tests pass their own table so they
# never send a DNS query off the machine.
Resolver = Callable[[str, int], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]


def check_outbound_url(
    url: str,
    settings: Settings,
    *,
    field: str = "url",
    require_https: bool | None = None,
    resolver: Resolver | None = None,
) -> str:
    """Return ``url`` when the hub may call it; raise ``ValidationFailed`` naming ``field``.

    ``require_https`` defaults to "the hub runs in production" (``ECW_ENVIRONMENT``).
    """
    if require_https is None:
        require_https = settings.ecw_environment is Environment.production
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse(field, "not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise _refuse(field, "only http and https URLs are allowed")
    if require_https and scheme != "https":
        raise _refuse(field, "production requires https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise _refuse(field, "credentials in the URL are not allowed; configure them as secrets")
    host = parts.hostname
    if not host:
        raise _refuse(field, "the URL has no host")
    if settings.allow_private_urls:
        return url
    port = port or (443 if scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if host.rstrip(".").lower() == "localhost" or host.rstrip(".").lower().endswith(".localhost"):
            raise _refuse(field, "the host is this machine (set VB_ALLOW_PRIVATE_URLS=true for a sandbox)") from None
        try:
            addresses = (resolver or system_resolver)(host, port)
        except (OSError, UnicodeError):
            raise _refuse(field, "the host name does not resolve") from None
    if not addresses:
        raise _refuse(field, "the host name does not resolve")
    for ip in addresses:
        if not is_public_address(ip):
            raise _refuse(
                field,
                "the host resolves to a private, loopback, link-local or reserved address "
                "(set VB_ALLOW_PRIVATE_URLS=true for a sandbox on a private network)",
            )
    return url
