"""What one EHR call is, for the audit trail and for callers: the FHIR interaction it performs
(FHIR R4 RESTful API, http.html), its target, and the parsed successful answer."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


class Interaction(enum.StrEnum):
    """FHIR RESTful interactions (FHIR R4 http.html), for the audit trail."""

    capabilities = "capabilities"  # GET [base]/metadata
    read = "read"  # GET [type]/[id]
    vread = "vread"  # GET [type]/[id]/_history/[vid]
    search = "search"  # GET [type]?… or POST [type]/_search
    create = "create"  # POST [type]
    update = "update"  # PUT [type]/[id]
    patch = "patch"  # PATCH [type]/[id]
    delete = "delete"  # DELETE [type]/[id]
    operation = "operation"  # $export, $everything …
    other = "other"  # absolute URLs the server handed us (paging, bulk status)


@dataclass(frozen=True)
class CallTarget:
    """Where a call goes and what the audit trail may say about it (no query values)."""

    url: str
    resource_type: str | None
    resource_ids: tuple[str, ...]
    interaction: Interaction
    # Names of query parameters already in the URL (a paging link's), for the audit trail.
    query_names: tuple[str, ...] = ()


def describe(method: str, relative: str) -> tuple[str | None, tuple[str, ...], Interaction]:
    segments = [s for s in relative.split("?", 1)[0].split("/") if s]
    if not segments:
        return None, (), Interaction.other
    if segments == ["metadata"]:
        return "CapabilityStatement", (), Interaction.capabilities
    rtype = segments[0] if RESOURCE_TYPE.match(segments[0]) else None
    ids = tuple(s for s in segments[1:2] if not s.startswith(("$", "_")))
    method = method.upper()
    if any(s.startswith("$") for s in segments):
        interaction = Interaction.operation
    elif method == "GET":
        interaction = (
            Interaction.vread
            if "_history" in segments and len(segments) >= 4
            else Interaction.read
            if ids
            else Interaction.search
        )
    elif method == "POST":
        interaction = Interaction.search if segments[-1] == "_search" else Interaction.create
    else:
        interaction = {"PUT": Interaction.update, "PATCH": Interaction.patch, "DELETE": Interaction.delete}.get(
            method, Interaction.other
        )
    return rtype, ids, interaction


@dataclass(frozen=True)
class EhrResponse:
    """A successful answer. ``body`` is the parsed JSON (None when empty or not JSON)."""

    status_code: int
    headers: httpx.Headers = field(repr=False)
    body: Any = field(repr=False)
    elapsed_ms: float
    correlation_id: str

    @property
    def location(self) -> str | None:
        value = self.headers.get("location") or self.headers.get("content-location")
        return str(value) if value else None

    def created_id(self) -> str | None:
        """The id the EHR gave a created resource: from ``Location`` ([type]/[id]/_history/[vid]) or the body."""
        if self.location:
            parts = [p for p in urlsplit(self.location).path.split("/") if p]
            if "_history" in parts:
                parts = parts[: parts.index("_history")]
            if len(parts) >= 2 and RESOURCE_TYPE.match(parts[-2]):
                return parts[-1]
        if isinstance(self.body, dict) and isinstance(self.body.get("id"), str):
            return str(self.body["id"])
        return None
