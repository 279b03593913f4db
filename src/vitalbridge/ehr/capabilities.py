"""A practice's CapabilityStatement, fetched through the EHR client and kept per process for
``VB_DELIVERY_CAPABILITY_TTL_S`` (FHIR R4 http.html#capabilities).

Used where an answer alone is ambiguous: a 404 on ``Patient/{id}`` is a missing patient only if
the server offers Patient ``read`` at all (issue 12, item 7). A statement that cannot be fetched
is "unknown", never "unsupported": the hub then keeps its usual reading of the answer.
"""

from __future__ import annotations

import threading
import time

from vitalbridge import audit
from vitalbridge.ehr.client import EhrClient, ehr_client
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.errors import EhrUnsupported, VitalbridgeError
from vitalbridge.fhir.capabilities import ServerCapabilities, Support
from vitalbridge.runtime import Hub

ACTOR = audit.Actor.service("ehr-capabilities")
_EXTRA = "ehr_capabilities"
_CREATE_LOCK = threading.Lock()


class CapabilityCache:
    def __init__(self, client: EhrClient, ttl_s: float) -> None:
        self._client = client
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._known: dict[str, tuple[ServerCapabilities, float]] = {}

    def get(self, conn: PracticeConnection, *, correlation_id: str | None = None) -> ServerCapabilities | None:
        with self._lock:
            known = self._known.get(conn.id)
        if known is not None and time.monotonic() - known[1] < self._ttl:
            return known[0]
        try:
            resp = self._client.get(conn, "metadata", actor=ACTOR, correlation_id=correlation_id)
        except VitalbridgeError:
            return None
        parsed = ServerCapabilities.parse(resp.body)
        if parsed is not None:
            with self._lock:
                self._known[conn.id] = (parsed, time.monotonic())
        return parsed

    def forget(self, practice_id: str | None = None) -> None:
        with self._lock:
            if practice_id is None:
                self._known.clear()
            else:
                self._known.pop(practice_id, None)

    def unsupported(
        self, conn: PracticeConnection, resource_type: str, interaction: str, *, status_code: int | None = None
    ) -> EhrUnsupported | None:
        """The error to raise when the statement says ``resource_type`` lacks ``interaction``."""
        caps = self.get(conn)
        if caps is None or caps.interaction(resource_type, interaction) is not Support.unsupported:
            return None
        return EhrUnsupported(
            f"the EHR of practice {conn.practice_code} does not offer {resource_type} {interaction} (its "
            "CapabilityStatement does not list it); this is a configuration problem, not a missing resource: "
            "run POST /api/v1/ecw/test/connection/",
            status_code=status_code,
        )


def capability_cache(hub: Hub) -> CapabilityCache:
    with _CREATE_LOCK:
        existing = hub.extras.get(_EXTRA)
        if isinstance(existing, CapabilityCache):
            return existing
        cache = CapabilityCache(ehr_client(hub), hub.settings.delivery_capability_ttl_s)
        hub.extras[_EXTRA] = cache
        return cache
