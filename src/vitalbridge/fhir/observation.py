"""Measurement → FHIR R4 vital-signs Observation (SPEC §7).

One measurement, one Observation:

* blood pressure → 85354-9 panel whose only components are 8480-6 and 8462-4 (mm[Hg]); the
  cuff's pulse is a separate heart-rate measurement, so never a third component here;
* heart rate → 8867-4 (/min); SpO2 → 59408-5 with 2708-6 (%); weight → 29463-7 (kg);
  glucose → 2339-0 or 41653-7 (mg/dL; not a vital sign, so no vital-signs profile claim).

Every Observation carries ``identifier`` = the hub's measurement id under the hub's own system:
the delivery worker's conditional create (``If-None-Exist: identifier=system|value``) keys on
it, which is what makes a retried POST harmless. ``subject`` is left out while the patient's
EHR id is unknown; ``with_subject`` adds it when the outbox row is released.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vitalbridge.devices.readings import DeviceRef, MealContext, MeasurementKind
from vitalbridge.fhir.codes import (
    LOINC_SYSTEM,
    OBSERVATION_CATEGORY_SYSTEM,
    UCUM_SYSTEM,
    Loinc,
    ObservationCategory,
    ObservationStatus,
    Ucum,
)

_PROFILE_BASE = "http://hl7.org/fhir/StructureDefinition/"
# The R4 vital-signs profile family member for each measurement (glucose has none).
PROFILES: dict[MeasurementKind, str] = {
    MeasurementKind.blood_pressure: _PROFILE_BASE + "bp",
    MeasurementKind.heart_rate: _PROFILE_BASE + "heartrate",
    MeasurementKind.oxygen_saturation: _PROFILE_BASE + "oxygensat",
    MeasurementKind.body_weight: _PROFILE_BASE + "bodyweight",
}
CODES: dict[MeasurementKind, tuple[Loinc, ...]] = {
    MeasurementKind.blood_pressure: (Loinc.blood_pressure_panel,),
    MeasurementKind.heart_rate: (Loinc.heart_rate,),
    MeasurementKind.oxygen_saturation: (Loinc.spo2_pulse_oximetry, Loinc.oxygen_saturation),
    MeasurementKind.body_weight: (Loinc.body_weight,),
    MeasurementKind.blood_glucose: (Loinc.glucose_blood,),
}
_MEAL_TEXT: dict[MealContext, str] = {
    MealContext.before_meal: "Measured before a meal",
    MealContext.after_meal: "Measured after a meal",
    MealContext.fasting: "Measured fasting",
    MealContext.random: "Measured at a random time",
}


@dataclass(frozen=True)
class ObservationInput:
    measurement_id: str
    kind: MeasurementKind
    unit: Ucum
    effective: datetime  # aware, in the device's own offset
    device: DeviceRef
    identifier_base: str  # e.g. https://hub.example.org/fhir/identifier
    value: float | None = None
    systolic: float | None = None
    diastolic: float | None = None
    patient_ehr_id: str | None = None
    irregular_heartbeat: bool | None = None
    meal_context: MealContext | None = None
    glucose_code: Loinc = Loinc.glucose_blood


def measurement_identifier_system(identifier_base: str) -> str:
    return f"{identifier_base.rstrip('/')}/measurement"


def device_identifier_system(identifier_base: str) -> str:
    return f"{identifier_base.rstrip('/')}/device"


def _number(v: float) -> int | float:
    # FHIR decimals carry precision: a cuff's 138 must not become "138.0".
    return int(v) if float(v).is_integer() else v


def _coding(code: Loinc) -> dict[str, str]:
    return {"system": LOINC_SYSTEM, "code": code.value, "display": code.display}


def _quantity(value: float, unit: Ucum) -> dict[str, Any]:
    return {"value": _number(value), "unit": unit.display, "system": UCUM_SYSTEM, "code": unit.value}


def codes_for(m: ObservationInput) -> tuple[Loinc, ...]:
    if m.kind is MeasurementKind.blood_glucose:
        return (m.glucose_code,)
    return CODES[m.kind]


def build_observation(m: ObservationInput) -> dict[str, Any]:
    codes = codes_for(m)
    obs: dict[str, Any] = {"resourceType": "Observation"}
    if m.kind in PROFILES:
        obs["meta"] = {"profile": [PROFILES[m.kind]]}
    obs["identifier"] = [{"system": measurement_identifier_system(m.identifier_base), "value": m.measurement_id}]
    obs["status"] = ObservationStatus.final.value
    obs["category"] = [
        {
            "coding": [
                {
                    "system": OBSERVATION_CATEGORY_SYSTEM,
                    "code": ObservationCategory.vital_signs.value,
                    "display": "Vital Signs",
                }
            ],
            "text": "Vital Signs",
        }
    ]
    obs["code"] = {"coding": [_coding(c) for c in codes], "text": codes[0].display}
    if m.patient_ehr_id:
        obs["subject"] = {"reference": f"Patient/{m.patient_ehr_id}"}
    obs["effectiveDateTime"] = m.effective.isoformat()
    device: dict[str, Any] = {
        "identifier": {"system": device_identifier_system(m.identifier_base), "value": m.device.serial}
    }
    label = " ".join(p for p in (m.device.manufacturer, m.device.model) if p)
    if label:
        device["display"] = label
    obs["device"] = device
    if m.kind is MeasurementKind.blood_pressure:
        if m.systolic is None or m.diastolic is None:
            raise ValueError("a blood-pressure measurement needs systolic and diastolic")
        obs["component"] = [
            {"code": {"coding": [_coding(Loinc.systolic)]}, "valueQuantity": _quantity(m.systolic, m.unit)},
            {"code": {"coding": [_coding(Loinc.diastolic)]}, "valueQuantity": _quantity(m.diastolic, m.unit)},
        ]
        if m.irregular_heartbeat:
            obs["note"] = [{"text": "The device detected an irregular heartbeat during this measurement."}]
    else:
        if m.value is None:
            raise ValueError(f"a {m.kind.value} measurement needs a value")
        obs["valueQuantity"] = _quantity(m.value, m.unit)
        if m.meal_context is not None:
            obs["note"] = [{"text": _MEAL_TEXT[m.meal_context]}]
    return obs


def with_subject(resource: dict[str, Any], patient_ehr_id: str) -> dict[str, Any]:
    """A copy of ``resource`` whose subject is the patient's EHR reference (keeps key order readable)."""
    out: dict[str, Any] = {}
    for key, value in copy.deepcopy(resource).items():
        if key == "subject":
            continue
        if key == "effectiveDateTime":
            out["subject"] = {"reference": f"Patient/{patient_ehr_id}"}
        out[key] = value
    if "subject" not in out:
        out["subject"] = {"reference": f"Patient/{patient_ehr_id}"}
    return out


def identifier_token(resource: dict[str, Any]) -> str:
    """``system|value`` of the hub identifier: the search token for ``If-None-Exist``."""
    ident = resource["identifier"][0]
    return f"{ident['system']}|{ident['value']}"
