"""The manifest's ``deleted`` files (Bulk Data Access IG v2, "Response - Complete Status",
``deleted``): after a ``_since`` export the server lists, as NDJSON, FHIR Bundles whose entries
say ``request: {method: DELETE, url: "Patient/123"}`` for resources deleted since then.

A registry patient named there is retired: marked inactive (``ehr_gone``), its undelivered
readings dead-lettered with a reason that says so (``outbox_follow.gone``). Other resource types
are not the hub's; unreadable lines are counted as issues, never guessed at.
"""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge import audit
from vitalbridge.patients.ehr_reads import FHIR_ID
from vitalbridge.patients.models import Patient, PatientStatus
from vitalbridge.patients.outbox_follow import gone
from vitalbridge.patients.registry import REASON_EHR_GONE


class NotADeletionBundle(ValueError):
    """The line is not a Bundle of DELETE entries."""


def deleted_patient_ids(raw: bytes) -> list[str]:
    """The Patient ids one NDJSON line (a Bundle) says were deleted."""
    try:
        bundle = json.loads(raw)
    except ValueError:
        raise NotADeletionBundle("not JSON") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise NotADeletionBundle("not a Bundle")
    ids = []
    for entry in bundle.get("entry") or []:
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict) or str(request.get("method", "")).upper() != "DELETE":
            continue
        url = request.get("url")
        if not isinstance(url, str):
            continue
        # "Patient/123", "Patient/123/_history/2" or an absolute URL of the server.
        segments = [s for s in urlsplit(url).path.split("/") if s]
        if "_history" in segments:
            segments = segments[: segments.index("_history")]
        if len(segments) >= 2 and segments[-2] == "Patient" and FHIR_ID.match(segments[-1]):
            ids.append(segments[-1])
    return ids


def retire(
    session: Session, practice_id: str, ehr_ids: list[str], *, now: datetime, actor: audit.Actor | str
) -> list[str]:
    """Retire the registry patients on these EHR ids; returns the local ids retired now."""
    if not ehr_ids:
        return []
    patients = session.scalars(
        select(Patient)
        .where(Patient.practice_id == practice_id, Patient.ehr_id.in_(sorted(set(ehr_ids))))
        .with_for_update()
    ).all()
    retired = []
    for patient in patients:
        if patient.status is PatientStatus.merged:
            continue  # folded into another patient: nothing of its own left to retire
        if patient.status is PatientStatus.inactive and patient.status_reason == REASON_EHR_GONE:
            continue  # retired before (an earlier sync)
        gone(session, patient, now=now, actor=actor)
        retired.append(patient.id)
    return retired
