"""SMART configuration discovery (SMART App Launch 2.0, "Conformance": ``.well-known/smart-configuration``).

Used when a practice is registered without an ``authorize_url``: the FHIR server publishes its
OAuth endpoints and the PKCE methods it supports beside its base URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from vitalbridge.errors import EhrRejected, EhrUnavailable
from vitalbridge.tenancy.hints import edit_hint

WELL_KNOWN = "/.well-known/smart-configuration"


@dataclass(frozen=True)
class SmartConfiguration:
    authorization_endpoint: str | None
    token_endpoint: str | None
    revocation_endpoint: str | None
    code_challenge_methods_supported: tuple[str, ...]

    @classmethod
    def parse(cls, body: Any) -> SmartConfiguration:
        if not isinstance(body, dict):
            raise EhrRejected("the SMART configuration document is not a JSON object")

        def url(name: str) -> str | None:
            value = body.get(name)
            return value if isinstance(value, str) and value.startswith(("https://", "http://")) else None

        methods = body.get("code_challenge_methods_supported")
        return cls(
            authorization_endpoint=url("authorization_endpoint"),
            token_endpoint=url("token_endpoint"),
            revocation_endpoint=url("revocation_endpoint"),
            code_challenge_methods_supported=tuple(str(m) for m in methods) if isinstance(methods, list) else (),
        )


def discover(http: httpx.Client, fhir_base_url: str, *, timeout: float = 30.0) -> SmartConfiguration:
    url = fhir_base_url.rstrip("/") + WELL_KNOWN
    try:
        resp = http.get(url, headers={"Accept": "application/json"}, timeout=timeout)
    except httpx.TransportError as exc:
        raise EhrUnavailable(f"{url} is unreachable ({type(exc).__name__})") from None
    if resp.status_code >= 500:
        raise EhrUnavailable(f"{url} failed with HTTP {resp.status_code}", status_code=resp.status_code)
    if resp.status_code != 200:
        raise EhrRejected(
            f"{url} answered HTTP {resp.status_code}: the EHR does not publish its SMART configuration; "
            "set the practice's authorize URL with " + edit_hint("--authorize-url URL", '"authorize_url"'),
            status_code=resp.status_code,
        )
    try:
        return SmartConfiguration.parse(resp.json())
    except ValueError:
        raise EhrRejected(f"{url} did not return JSON") from None
