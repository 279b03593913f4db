"""Search parameters and searchset Bundles (FHIR R4 §3.1.1 "Search", §2.36 Bundle paging).

Strict but helpful: an unsupported parameter is a 400 naming it and listing what is supported
(eCW silently ignores unknown parameters, which turns a typo into "all patients"; a test
double should catch that typo). Paging is by ``_count`` (default 20, capped at 100) and
``_offset``; clients should simply follow the ``next`` link.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from vitalbridge.sandbox.errors import bad_request
from vitalbridge.sandbox.fhir.store import now_instant

# Parameters any search accepts, besides the resource's own.
COMMON = frozenset({"_count", "_offset", "_format"})
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})


@dataclass(frozen=True)
class Query:
    params: list[tuple[str, str]]  # the resource's own parameters, in request order
    count: int
    offset: int

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.params if k == name]


def parse_query(request: Request, resource: str, supported: Iterable[str], default: int, cap: int) -> Query:
    allowed = frozenset(supported)
    params: list[tuple[str, str]] = []
    count, offset = default, 0
    for name, value in request.query_params.multi_items():
        if name == "_count":
            count = min(_non_negative(name, value), cap)
        elif name == "_offset":
            offset = _non_negative(name, value)
        elif name == "_format":
            if value not in JSON_FORMATS:
                raise bad_request(f"_format {value!r} is not supported; this server speaks JSON only")
        elif name in allowed:
            if not value:
                raise bad_request(f"search parameter {name!r} has an empty value")
            params.append((name, value))
        else:
            raise bad_request(
                f"unknown search parameter {name!r} for {resource}; supported: " + ", ".join(sorted(allowed | COMMON))
            )
    return Query(params, count, offset)


def _non_negative(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise bad_request(f"{name} must be a non-negative integer, got {value!r}")
    return number


def split_token(value: str) -> tuple[str | None, str]:
    """``system|code`` → (system, code); a bare ``code`` → (None, code); ``|code`` → ("", code)."""
    if "|" in value:
        system, _, code = value.partition("|")
        return system, code
    return None, value


def searchset(
    base: str, resource: str, query: Query, total: int, resources: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    def link(offset: int) -> str:
        return f"{base}/{resource}?" + urlencode([*query.params, ("_count", query.count), ("_offset", offset)])

    links = [{"relation": "self", "url": link(query.offset)}]
    if query.count and query.offset + query.count < total:
        links.append({"relation": "next", "url": link(query.offset + query.count)})
    if query.offset > 0 and query.count:
        links.append({"relation": "previous", "url": link(max(0, query.offset - query.count))})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "meta": {"lastUpdated": now_instant()},
        "total": total,
        "link": links,
        "entry": [
            {"fullUrl": f"{base}/{resource}/{r['id']}", "resource": r, "search": {"mode": "match"}} for r in resources
        ],
    }
