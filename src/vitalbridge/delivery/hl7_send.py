"""The HL7 v2 channel (SPEC §7 last bullet): an outbox row as one ORU^R01 over MLLP.

The row's validated Observation is mapped to ``hl7v2.oru`` inputs (LOINC code, UCUM quantity or
the BP panel's components, effective time, device) plus the patient's identifiers, and sent
with ``hl7v2.delivery.deliver_oru``, which records the message and ACK. The control id derives
from the measurement id, so a resend after an ambiguous failure carries the same MSH-10.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from vitalbridge.errors import ValidationFailed
from vitalbridge.hl7v2.delivery import deliver_oru
from vitalbridge.hl7v2.oru import OruComponent, OruMeasurement, OruParties, OruPatient, build_oru
from vitalbridge.patients.models import Patient
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Practice


def _code(concept: Any) -> tuple[str, str]:
    for coding in (concept or {}).get("coding") or []:
        if coding.get("system") == "http://loinc.org":
            return str(coding.get("code", "")), str(coding.get("display", ""))
    return "", ""


def _component(concept: Any, quantity: Any) -> OruComponent:
    code, display = _code(concept)
    q = quantity or {}
    return OruComponent(loinc=code, display=display, value=q.get("value", ""), unit=str(q.get("code", "")))


def measurement_of(measurement_id: str, resource: Mapping[str, Any]) -> OruMeasurement:
    loinc, display = _code(resource.get("code"))
    if resource.get("component"):
        components = [_component(c.get("code"), c.get("valueQuantity")) for c in resource["component"]]
    else:
        components = [_component(resource.get("code"), resource.get("valueQuantity"))]
    effective = resource.get("effectiveDateTime")
    if not isinstance(effective, str):
        raise ValidationFailed("the Observation has no effectiveDateTime")
    device = (resource.get("device") or {}).get("display") or (resource.get("device") or {}).get("reference")
    return OruMeasurement(
        measurement_id=measurement_id,
        loinc=loinc,
        display=display,
        observed_at=datetime.fromisoformat(effective.replace("Z", "+00:00")),
        components=components,
        device_id=str(device) if device else None,
    )


def send(hub: Hub, practice_id: str, patient_id: str | None, measurement_id: str, resource: Mapping[str, Any]) -> str:
    """Send and wait for the ACK; returns the ACK's control id. Raises the hl7v2 error tree."""
    with hub.sessions() as session:
        practice = session.get(Practice, practice_id)
        patient = session.get(Patient, patient_id) if patient_id else None
        if practice is None or patient is None:
            raise ValidationFailed("the row's practice or patient no longer exists")
        oru_patient = OruPatient(
            mrn=patient.mrn,
            mrn_authority=patient.mrn_system or "",
            ehr_id=patient.ehr_id,
            family_name=patient.family_name,
            given_name=patient.given_name,
            birth_date=patient.birth_date,
            gender=patient.gender,
        )
        parties = OruParties(
            receiving_application=getattr(practice, "hl7_receiving_application", None) or "",
            receiving_facility=getattr(practice, "hl7_receiving_facility", None) or "",
        )
    oru = build_oru(oru_patient, measurement_of(measurement_id, resource), parties=parties)
    result = asyncio.run(deliver_oru(hub, practice_id, oru, patient_id=patient_id))
    return result.ack_control_id
