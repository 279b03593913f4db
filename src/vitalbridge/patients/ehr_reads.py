"""Reading Patients from a practice's EHR (FHIR R4 search and read; SPEC §4), through the one EHR
client (tokens, 401 refresh, rate limits, audit of every call).

No database transaction may be open while these run: the EHR client writes its own audit
entries and token cache in short transactions (docs/smart.md, "for developers").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vitalbridge import audit
from vitalbridge.ehr.capabilities import capability_cache
from vitalbridge.ehr.client import ehr_client
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.errors import EhrNotFound, ValidationFailed
from vitalbridge.patients.fhir_mapping import EhrPatient, map_patient
from vitalbridge.runtime import Hub

log = logging.getLogger(__name__)

# FHIR R4 id datatype: 1-64 of [A-Za-z0-9\-\.].
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# Pages followed at most for one search, whatever the server's page size (a runaway guard).
MAX_PAGES = 50


@dataclass
class SearchResult:
    patients: list[EhrPatient] = field(default_factory=list)
    unreadable: int = 0  # entries the hub could not map (invalid Patient resources)
    total: int | None = None  # Bundle.total, when the server gives it
    pages: int = 0


def _entries(bundle: Any) -> list[dict[str, Any]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return []
    out = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        mode = (entry.get("search") or {}).get("mode", "match") if isinstance(entry, dict) else None
        # ``include``/``outcome`` entries are not hits.
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient" and mode == "match":
            out.append(resource)
    return out


def _next_link(bundle: Any) -> str | None:
    if not isinstance(bundle, dict):
        return None
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


def search_patients(
    hub: Hub,
    practice: PracticeConnection,
    params: Mapping[str, str],
    *,
    count: int,
    mrn_system: str | None,
    actor: audit.Actor | str,
    correlation_id: str | None = None,
) -> SearchResult:
    """``GET Patient?…&_count=`` and follow ``next`` links until ``count`` hits or the last page."""
    client = ehr_client(hub)
    result = SearchResult()
    query: dict[str, str | int] = {**params, "_count": count}
    response = client.get(
        practice, "Patient", params=query, resource_type="Patient", actor=actor, correlation_id=correlation_id
    )
    while True:
        result.pages += 1
        bundle = response.body
        if result.total is None and isinstance(bundle, dict) and isinstance(bundle.get("total"), int):
            result.total = int(bundle["total"])
        for resource in _entries(bundle):
            if len(result.patients) >= count:
                break
            try:
                result.patients.append(map_patient(resource, mrn_system=mrn_system))
            except ValidationFailed:
                result.unreadable += 1
        next_url = _next_link(bundle)
        if len(result.patients) >= count or next_url is None or result.pages >= MAX_PAGES:
            return result
        response = client.get(practice, next_url, resource_type="Patient", actor=actor, correlation_id=correlation_id)


def read_patient(
    hub: Hub,
    practice: PracticeConnection,
    ehr_id: str,
    *,
    mrn_system: str | None,
    actor: audit.Actor | str,
    correlation_id: str | None = None,
) -> EhrPatient:
    """``GET Patient/{id}``; ``EhrNotFound`` for 404/410, ``ValidationFailed`` for an unreadable body,
    ``EhrUnsupported`` when the server does not offer Patient read at all (its 404 then says
    nothing about the patient)."""
    try:
        response = ehr_client(hub).get(
            practice, f"Patient/{ehr_id}", resource_type="Patient", actor=actor, correlation_id=correlation_id
        )
    except EhrNotFound as exc:
        unsupported = capability_cache(hub).unsupported(practice, "Patient", "read", status_code=exc.status_code)
        if unsupported is not None:
            raise unsupported from None
        raise
    body = response.body if isinstance(response.body, dict) else {}
    return map_patient(body, mrn_system=mrn_system)
