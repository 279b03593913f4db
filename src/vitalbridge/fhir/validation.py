"""Offline validation of FHIR resources before they are queued (SPEC §7).

Two layers:

1. Structure and datatypes with fhir.resources. Version 8 ships R4B models (``fhir.resources.R4B``);
   R4B changed nothing in Observation or the datatypes it uses, so they validate R4 4.0.1
   Observations exactly.
2. The vital-signs profile rules that a structural model cannot express (fixed category,
   LOINC code, UCUM units per code, components of the BP panel, subject and effective time
   required) plus the ObservationStatus required binding, which fhir.resources does not enforce.

Errors are ``FieldError``s whose ``loc`` is the element path (rendered by ``element_path`` as
``Observation.component[0].valueQuantity.code``). Messages name elements and codes, never values.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from vitalbridge.errors import FieldError
from vitalbridge.fhir.codes import (
    LOINC_SYSTEM,
    OBSERVATION_CATEGORY_SYSTEM,
    UCUM_SYSTEM,
    Loinc,
    ObservationCategory,
    ObservationStatus,
    Ucum,
)

Loc = tuple[str | int, ...]

# UCUM units the vital-signs profiles allow per code (R4 §vitalsigns, unit bindings).
UNITS_BY_CODE: dict[str, frozenset[str]] = {
    Loinc.systolic: frozenset({Ucum.mm_hg}),
    Loinc.diastolic: frozenset({Ucum.mm_hg}),
    Loinc.heart_rate: frozenset({Ucum.per_minute}),
    Loinc.spo2_pulse_oximetry: frozenset({Ucum.percent}),
    Loinc.oxygen_saturation: frozenset({Ucum.percent}),
    Loinc.body_weight: frozenset({Ucum.kilogram, Ucum.pound, "g"}),
    Loinc.glucose_blood: frozenset({Ucum.mg_per_dl}),
    Loinc.glucose_glucometer: frozenset({Ucum.mg_per_dl}),
}
_BP_COMPONENTS = (Loinc.systolic.value, Loinc.diastolic.value)


def element_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def structural_errors(resource: dict[str, Any]) -> list[FieldError]:
    """fhir.resources (R4B models) validation of any resource type."""
    from fhir.resources.R4B import get_fhir_model_class

    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        return [FieldError(("resourceType",), "resourceType is missing", "fhir.structure")]
    try:
        model = get_fhir_model_class(rtype)
    except KeyError:
        return [FieldError(("resourceType",), f"unknown resource type {rtype!r}", "fhir.structure")]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [
            FieldError((rtype, *err["loc"]), str(err["msg"]), "fhir.structure")
            for err in exc.errors(include_input=False, include_url=False)
        ]
    return []


def _codes(concept: Any, system: str) -> list[str]:
    if not isinstance(concept, dict):
        return []
    return [
        str(c["code"])
        for c in concept.get("coding") or []
        if isinstance(c, dict) and c.get("system") == system and isinstance(c.get("code"), str)
    ]


def _quantity_errors(q: Any, loinc: str | None, loc: Loc) -> list[FieldError]:
    if not isinstance(q, dict):
        return [FieldError(loc, "a valueQuantity is required", "fhir.profile")]
    errors: list[FieldError] = []
    for key in ("value", "unit", "system", "code"):
        if key not in q:
            errors.append(
                FieldError((*loc, key), f"valueQuantity.{key} is required by the vital-signs profile", "fhir.profile")
            )
    if q.get("system", UCUM_SYSTEM) != UCUM_SYSTEM:
        errors.append(FieldError((*loc, "system"), f"units must be UCUM ({UCUM_SYSTEM})", "fhir.profile"))
    allowed = UNITS_BY_CODE.get(loinc or "")
    if allowed is not None and "code" in q and q["code"] not in allowed:
        errors.append(
            FieldError((*loc, "code"), f"LOINC {loinc} takes UCUM {' or '.join(sorted(allowed))}", "fhir.profile")
        )
    return errors


def vital_signs_errors(
    obs: dict[str, Any], *, require_subject: bool = True, root: Loc = ("Observation",)
) -> list[FieldError]:
    """Profile checks on an Observation dict that already passed the structural layer."""
    errors: list[FieldError] = []

    def err(loc: Loc, msg: str) -> None:
        errors.append(FieldError((*root, *loc), msg, "fhir.profile"))

    status = obs.get("status")
    if status not in {s.value for s in ObservationStatus}:
        err(("status",), "status must be a code of the ObservationStatus value set")
    categories = obs.get("category") or []
    if not any(ObservationCategory.vital_signs in _codes(c, OBSERVATION_CATEGORY_SYSTEM) for c in categories):
        err(("category",), f"a category coding {OBSERVATION_CATEGORY_SYSTEM}|vital-signs is required")
    loincs = _codes(obs.get("code"), LOINC_SYSTEM)
    if not loincs:
        err(("code", "coding"), "a LOINC coding is required")
    subject = obs.get("subject")
    if require_subject:
        ref = subject.get("reference") if isinstance(subject, dict) else None
        if not isinstance(ref, str) or not ref.startswith("Patient/") or len(ref) <= len("Patient/"):
            err(("subject",), "subject must reference the Patient (Patient/{id})")
    if "effectiveDateTime" not in obs and "effectivePeriod" not in obs:
        err(("effectiveDateTime",), "effective[x] is required (dateTime or Period)")
    if not obs.get("identifier"):
        err(("identifier",), "the hub's measurement identifier is required for idempotent delivery")

    if Loinc.blood_pressure_panel in loincs:
        if "valueQuantity" in obs:
            err(("valueQuantity",), "a blood-pressure panel carries its values in components only")
        components = obs.get("component") or []
        found: list[str] = []
        for i, comp in enumerate(components):
            codes = _codes(comp.get("code") if isinstance(comp, dict) else None, LOINC_SYSTEM)
            code = next((c for c in codes if c in _BP_COMPONENTS), None)
            if code is None:
                err(("component", i, "code"), "a BP panel component must be systolic 8480-6 or diastolic 8462-4")
                continue
            found.append(code)
            for e in _quantity_errors(comp.get("valueQuantity"), code, ("component", i, "valueQuantity")):
                errors.append(FieldError((*root, *e.loc), e.msg, e.type))
        for needed in _BP_COMPONENTS:
            if found.count(needed) != 1:
                err(("component",), f"the BP panel needs exactly one component {needed}")
        return errors

    if Loinc.spo2_pulse_oximetry in loincs and Loinc.oxygen_saturation not in loincs:
        err(("code", "coding"), "SpO2 59408-5 must also carry 2708-6 (vital-signs oxygensat profile)")
    if obs.get("component"):
        err(("component",), "components are only expected on the blood-pressure panel")
    known = next((c for c in loincs if c in UNITS_BY_CODE), loincs[0] if loincs else None)
    for e in _quantity_errors(obs.get("valueQuantity"), known, ("valueQuantity",)):
        errors.append(FieldError((*root, *e.loc), e.msg, e.type))
    return errors


def validate_observation(resource: dict[str, Any], *, require_subject: bool = True) -> list[FieldError]:
    """Everything the hub checks before an Observation may be queued; empty list = valid."""
    if resource.get("resourceType") != "Observation":
        return [FieldError(("resourceType",), "expected an Observation", "fhir.structure")]
    errors = structural_errors(resource)
    if errors:
        return errors
    return vital_signs_errors(resource, require_subject=require_subject)


def validate_any(resource: dict[str, Any]) -> list[FieldError]:
    """For ``vitalbridge fhir validate``: any R4 resource; vital-signs Observations get profile checks too.

    Observations inside a Bundle's entries are checked against the profile as well.
    """
    errors = structural_errors(resource)
    if errors:
        return errors
    if resource.get("resourceType") == "Observation" and _is_vital_sign(resource):
        return vital_signs_errors(resource)
    if resource.get("resourceType") == "Bundle":
        for i, entry in enumerate(resource.get("entry") or []):
            inner = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(inner, dict) and inner.get("resourceType") == "Observation" and _is_vital_sign(inner):
                errors.extend(vital_signs_errors(inner, root=("Bundle", "entry", i, "resource")))
    return errors


def _is_vital_sign(obs: dict[str, Any]) -> bool:
    return any(
        ObservationCategory.vital_signs in _codes(c, OBSERVATION_CATEGORY_SYSTEM) for c in obs.get("category") or []
    )
