"""Writing one Observation to a practice's FHIR server without ever creating it twice (SPEC §7).

* ``create``: ``POST {base}/Observation`` with ``If-None-Exist: identifier=system|value`` when the
  server's CapabilityStatement says ``conditionalCreate``; 201 = created, 200 = it was already
  there (the existing resource's id is kept). Without conditional create the caller searches first.
* ``find``: ``GET {base}/Observation?identifier=system|value``. Used before any retry after an
  ambiguous failure (a timeout, reset or 5xx after the request was sent may have been stored),
  and before every send of a row that was claimed before (its worker may have died after the
  EHR's 201 and before the hub's commit).

The conditional create already makes the server search atomically; the explicit search before
a retry protects against servers that advertise conditional create but apply it loosely.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from vitalbridge.ehr.client import EhrClient
from vitalbridge.ehr.connection import PracticeConnection

ACTOR = "service:delivery-worker"


@dataclass(frozen=True)
class Sent:
    ehr_id: str | None
    status_code: int
    how: str  # created, conditional_match, found


class Capabilities:
    """Per practice: does the server do conditional create? Cached for ``ttl_s`` in this process."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._known: dict[str, tuple[bool, float]] = {}

    def conditional_create(self, client: EhrClient, conn: PracticeConnection, correlation_id: str) -> bool:
        with self._lock:
            known = self._known.get(conn.id)
        if known is not None and time.monotonic() - known[1] < self._ttl:
            return known[0]
        resp = client.get(conn, "metadata", correlation_id=correlation_id, actor=ACTOR)
        supported = observation_conditional_create(resp.body)
        with self._lock:
            self._known[conn.id] = (supported, time.monotonic())
        return supported

    def forget(self, practice_id: str | None = None) -> None:
        with self._lock:
            if practice_id is None:
                self._known.clear()
            else:
                self._known.pop(practice_id, None)


def observation_conditional_create(capability: Any) -> bool:
    if not isinstance(capability, dict):
        return False
    for rest in capability.get("rest") or []:
        if not isinstance(rest, dict) or rest.get("mode", "server") != "server":
            continue
        for resource in rest.get("resource") or []:
            if isinstance(resource, dict) and resource.get("type") == "Observation":
                return bool(resource.get("conditionalCreate"))
    return False


def find(client: EhrClient, conn: PracticeConnection, idempotency_key: str, correlation_id: str) -> str | None:
    """The EHR id of the Observation carrying the hub identifier, or None."""
    resp = client.get(
        conn,
        "Observation",
        params={"identifier": idempotency_key, "_count": "2"},
        correlation_id=correlation_id,
        actor=ACTOR,
    )
    body = resp.body if isinstance(resp.body, dict) else {}
    for entry in body.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Observation" and resource.get("id"):
            return str(resource["id"])
    return None


def create(
    client: EhrClient,
    conn: PracticeConnection,
    resource: dict[str, Any],
    idempotency_key: str,
    *,
    conditional: bool,
    correlation_id: str,
) -> Sent:
    headers = {"If-None-Exist": f"identifier={idempotency_key}"} if conditional else None
    resp = client.post(
        conn,
        "Observation",
        json=resource,
        headers=headers,
        resource_type="Observation",
        correlation_id=correlation_id,
        actor=ACTOR,
    )
    how = "conditional_match" if resp.status_code == 200 else "created"
    return Sent(resp.created_id(), resp.status_code, how)
