"""Hub-wide uniqueness of what names an EHR tenant and an EHR client (issue 10, items 1 and 2).

An organization that could register another's (FHIR base URL, practice code) or (token endpoint,
client id) would read and write the other's EHR tenant; one that could map another's HL7 sending
facility would receive its feed. Each pair is compared in a normalised form, so a trailing slash,
a capital letter, a default port, ``/./`` or percent-encoding cannot make the "same" registration
look new. Normalising too much only refuses a registration that differs in case alone — a safe
failure, where normalising too little is a hijack.

The keys stored are SHA-256 digests of the normalised pair: a client id may be a signed JWT of
thousands of characters, longer than a PostgreSQL btree index entry may be.
"""

from __future__ import annotations

import contextlib
import hashlib
from urllib.parse import unquote, urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_url(url: str) -> str:
    """``scheme://host[:port]/path`` lower-cased, without userinfo, default port, query, fragment,
    dot segments, empty segments or a trailing slash; percent-escapes decoded."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    # A host IDNA cannot encode keeps its lower-cased form; the API refuses such URLs anyway.
    with contextlib.suppress(UnicodeError):
        host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    segments: list[str] = []
    for segment in unquote(parts.path).split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return f"{scheme}://{netloc}/" + "/".join(segments).lower()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def tenant_key(fhir_base_url: str, practice_code: str) -> str:
    """Names one EHR tenant: the normalised FHIR base URL and the practice code (case-folded)."""
    return _digest("tenant", normalize_url(fhir_base_url), practice_code.strip().casefold())


def client_claim_key(token_url: str, client_id: str) -> str:
    """Names one EHR client registration: the normalised token endpoint and the client id.

    Client ids are compared case-folded: an EHR that matches them without case would otherwise
    let a second organization claim the same client by changing one letter.
    """
    return _digest("client", normalize_url(token_url), client_id.strip().casefold())


def facility_key(sending_facility: str) -> str:
    """MSH-4 namespace ids as stored (and matched by the inbound listener): trimmed."""
    return sending_facility.strip()
