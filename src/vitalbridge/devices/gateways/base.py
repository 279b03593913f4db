"""What a gateway adapter does (SPEC §5): bytes in, readings or field errors out.

An adapter knows one gateway's wire format and nothing else: no database, no web framework,
no units or plausibility (``devices.normalize`` applies those to every gateway alike). Signature
checking is shared too (``devices.signing``): all supported gateways sign the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from vitalbridge.devices.readings import GatewayReading, Loc
from vitalbridge.errors import FieldError


class GatewayKind(enum.StrEnum):
    """Gateway vendors the hub speaks to; the value is the webhook path segment."""

    mioconnect = "mioconnect"  # MioConnect-style cellular hub (docs/gateways/mioconnect.md)


@dataclass
class ParseResult:
    """Either readings or errors; errors name the payload location (``("body", "data", "systolic")``)."""

    readings: list[GatewayReading] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class Page:
    """One page of the gateway's REST API: raw records and the cursor of the next page."""

    records: list[Any]
    next_cursor: str | None


@dataclass(frozen=True)
class PageRequest:
    path: str
    params: dict[str, str]


class GatewayAdapter(Protocol):
    kind: GatewayKind

    def parse_webhook(self, body: bytes) -> ParseResult:
        """One webhook body (already authenticated) → its reading(s)."""
        ...

    def parse_record(self, record: Any, loc: Loc) -> ParseResult:
        """One record from the REST API (already JSON-decoded); ``loc`` prefixes error locations."""
        ...

    def page_request(self, since: datetime, until: datetime, cursor: str | None, page_size: int) -> PageRequest:
        """The REST call listing readings measured in ``[since, until)``."""
        ...

    def parse_page(self, body: bytes) -> Page:
        """Decode one REST page; raises ``ValueError`` when the page itself is malformed."""
        ...
