"""SSRF guard (SPEC §2: per-practice URLs) for every URL a tenant can configure (practice FHIR base, token and authorize
URLs; later JWKS and gateway URLs).

A tenant admin types a URL; the hub's workers then call it with credentials, from inside the
hosting network. Without a guard that is a way to reach cloud metadata services, databases or
admin consoles on private addresses. The rule: ``http``/``https`` only, no user-info, a host
that resolves only to public unicast addresses; ``https`` required in production. The sandbox
and tests (which live on loopback) set ``VB_ALLOW_PRIVATE_URLS=true``.

The check runs when a URL is stored. DNS can change afterwards (rebinding), so callers that
want the strongest guarantee run ``check_outbound_url`` again right before connecting.
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


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _is_public(ip.ipv4_mapped)
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
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
            addresses = (resolver or _resolve)(host, port)
        except (OSError, UnicodeError):
            raise _refuse(field, "the host name does not resolve") from None
    if not addresses:
        raise _refuse(field, "the host name does not resolve")
    for ip in addresses:
        if not _is_public(ip):
            raise _refuse(
                field,
                "the host resolves to a private, loopback, link-local or reserved address "
                "(set VB_ALLOW_PRIVATE_URLS=true for a sandbox on a private network)",
            )
    return url
