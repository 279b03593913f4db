"""Offline validation of FHIR resources before they are queued (SPEC §7) and for ``fhir validate``.

Three layers:

1. Structure, for any R4 resource: fhir.resources models (version 8 ships R4B as
   ``fhir.resources.R4B``; R4B changed nothing in the datatypes or in Observation/Patient, and the
   project has no R4-only package, so R4B stands in for R4 4.0.1), plus ``json_rules``: JSON types of
   primitives (``"95"`` is not a decimal) and required-binding codes (status, gender …), which the
   models do not enforce. Roughly the official validator's structural checks, without profiles.
2. The R4 vital-signs profile (FHIR R4 §11.1 observation-vitalsigns), for Observations in the
   vital-signs category or claiming the profile: category, LOINC code, subject, effective[x] to at
   least the day (vs-1), a value or ``dataAbsentReason`` unless ``component``/``hasMember`` carry the
   data (vs-2), the same per component (vs-3), UCUM units per code, the BP panel's two components.
3. The hub's own delivery rules (``hub_rule_errors``): what an Observation the hub writes to an EHR
   must also have — its measurement identifier (idempotent delivery), ``Patient/{id}`` subject,
   a measured value (no ``dataAbsentReason``-only or ``hasMember`` panels), only systolic and
   diastolic in a BP panel. Delivery and ingest apply all three; ``fhir validate`` applies the
   third only with ``--hub-rules``.

Errors are ``FieldError``s whose ``loc`` is the element path (rendered by ``element_path`` as
``Observation.component[0].valueQuantity.code``). Messages name elements and codes, never values.
"""

from __future__ import annotations

from typing import Any

from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError

from vitalbridge.errors import FieldError
from vitalbridge.fhir.codes import (
    LOINC_SYSTEM,
    OBSERVATION_CATEGORY_SYSTEM,
    UCUM_SYSTEM,
    Loinc,
    ObservationCategory,
    Ucum,
)
from vitalbridge.fhir.json_rules import json_rule_errors

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
# The R4 vital-signs profile and the profiles derived from it (FHIR R4 §11.1.1, "vital signs table").
VITAL_SIGNS_PROFILES = frozenset(
    "http://hl7.org/fhir/StructureDefinition/" + name
    for name in (
        "vitalsigns",
        "vitalspanel",
        "resprate",
        "heartrate",
        "oxygensat",
        "bodytemp",
        "bodyheight",
        "headcircum",
        "bodyweight",
        "bmi",
        "bp",
    )
)


def element_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def model_class(resource_type: str) -> type[FHIRAbstractModel] | None:
    """The R4(B) model of a resource type, None when ``resource_type`` names no resource."""
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.resource import Resource

    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):  # fhir.resources raises ValueError for an unknown name
        return None
    return model if issubclass(model, Resource) else None


def structural_errors(resource: dict[str, Any]) -> list[FieldError]:
    """Model validation plus JSON types and required codes, for any R4 resource type."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        return [FieldError(("resourceType",), "resourceType is missing", "fhir.structure")]
    model = model_class(rtype)
    if model is None:
        return [FieldError(("resourceType",), "resourceType is not a FHIR R4 resource type", "fhir.structure")]
    errors: list[FieldError] = []
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        errors = [
            FieldError((rtype, *err["loc"]), str(err["msg"]), "fhir.structure")
            for err in exc.errors(include_input=False, include_url=False)
        ]
    seen = {e.loc for e in errors}
    for e in json_rule_errors(model, resource, (rtype,), model_class):
        if e.loc not in seen:
            errors.append(e)
    return errors


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


def _has_value(element: dict[str, Any]) -> bool:
    return any(key.startswith("value") for key in element)


def _component_code(comp: Any) -> str | None:
    codes = _codes(comp.get("code") if isinstance(comp, dict) else None, LOINC_SYSTEM)
    return next((c for c in codes if c in _BP_COMPONENTS), codes[0] if codes else None)


def vital_signs_errors(
    obs: dict[str, Any], *, require_subject: bool = True, root: Loc = ("Observation",)
) -> list[FieldError]:
    """R4 vital-signs profile checks on an Observation dict that already passed the structural layer."""
    errors: list[FieldError] = []

    def err(loc: Loc, msg: str) -> None:
        errors.append(FieldError((*root, *loc), msg, "fhir.profile"))

    categories = obs.get("category") or []
    if not any(ObservationCategory.vital_signs in _codes(c, OBSERVATION_CATEGORY_SYSTEM) for c in categories):
        err(("category",), f"a category coding {OBSERVATION_CATEGORY_SYSTEM}|vital-signs is required")
    loincs = _codes(obs.get("code"), LOINC_SYSTEM)
    if not loincs:
        err(("code", "coding"), "a LOINC coding is required")
    subject = obs.get("subject")
    if require_subject:
        ref = subject.get("reference") if isinstance(subject, dict) else None
        if not isinstance(subject, dict) or not (ref or subject.get("identifier")):
            err(("subject",), "subject is required (a reference to the Patient)")
        elif isinstance(ref, str) and _relative_type(ref) not in (None, "Patient"):
            err(("subject", "reference"), "subject must reference a Patient")
    effective = obs.get("effectiveDateTime")
    if effective is None and "effectivePeriod" not in obs:
        err(("effectiveDateTime",), "effective[x] is required (dateTime or Period)")
    elif isinstance(effective, str) and len(effective) < len("YYYY-MM-DD"):
        err(("effectiveDateTime",), "effectiveDateTime must be precise to at least the day (vs-1)")
    if not obs.get("component") and not obs.get("hasMember") and not _has_value(obs) and "dataAbsentReason" not in obs:
        err(
            ("value[x]",), "a value[x] or a dataAbsentReason is required when there is no component or hasMember (vs-2)"
        )

    components = obs.get("component") or []
    found: list[str] = []
    for i, comp in enumerate(components):
        if not isinstance(comp, dict):
            continue
        code = _component_code(comp)
        if code is not None:
            found.append(code)
        if not _has_value(comp) and "dataAbsentReason" not in comp:
            err(("component", i), "a component needs a value[x] or a dataAbsentReason (vs-3)")
        if "valueQuantity" in comp:
            for e in _quantity_errors(comp["valueQuantity"], code, ("component", i, "valueQuantity")):
                errors.append(FieldError((*root, *e.loc), e.msg, e.type))
    if Loinc.blood_pressure_panel in loincs:
        for needed in _BP_COMPONENTS:
            if found.count(needed) != 1:
                err(("component",), f"the BP panel needs exactly one component {needed}")
    if Loinc.spo2_pulse_oximetry in loincs and Loinc.oxygen_saturation not in loincs:
        err(("code", "coding"), "SpO2 59408-5 must also carry 2708-6 (vital-signs oxygensat profile)")
    if "valueQuantity" in obs:
        known = next((c for c in loincs if c in UNITS_BY_CODE), loincs[0] if loincs else None)
        for e in _quantity_errors(obs["valueQuantity"], known, ("valueQuantity",)):
            errors.append(FieldError((*root, *e.loc), e.msg, e.type))
    return errors


def _relative_type(reference: str) -> str | None:
    """``Patient`` for ``Patient/1`` or ``https://x/fhir/Patient/1``; None for ``urn:uuid:…`` or ``#c1``."""
    if reference.startswith(("urn:", "#")):
        return None
    parts = [p for p in reference.split("/_history/")[0].split("/") if p]
    return parts[-2] if len(parts) >= 2 else None


def hub_rule_errors(
    obs: dict[str, Any], *, require_subject: bool = True, root: Loc = ("Observation",)
) -> list[FieldError]:
    """What the hub itself requires of an Observation it delivers, beyond the R4 profile."""
    errors: list[FieldError] = []

    def err(loc: Loc, msg: str) -> None:
        errors.append(FieldError((*root, *loc), msg, "hub.rules"))

    if not obs.get("identifier"):
        err(("identifier",), "the hub's measurement identifier is required for idempotent delivery")
    if require_subject:
        subject = obs.get("subject")
        ref = subject.get("reference") if isinstance(subject, dict) else None
        if not isinstance(ref, str) or not ref.startswith("Patient/") or len(ref) <= len("Patient/"):
            err(("subject",), "subject must reference the Patient (Patient/{id})")
    if obs.get("hasMember"):
        err(("hasMember",), "the hub delivers measurements, not panels of references (hasMember)")
    loincs = _codes(obs.get("code"), LOINC_SYSTEM)
    components = obs.get("component") or []
    if Loinc.blood_pressure_panel in loincs:
        if "valueQuantity" in obs:
            err(("valueQuantity",), "a blood-pressure panel carries its values in components only")
        for i, comp in enumerate(components):
            if _component_code(comp) not in _BP_COMPONENTS:
                err(("component", i, "code"), "a BP panel component must be systolic 8480-6 or diastolic 8462-4")
            elif isinstance(comp, dict) and "valueQuantity" not in comp:
                err(("component", i, "valueQuantity"), "the hub delivers measured values: valueQuantity is required")
        return errors
    if components:
        err(("component",), "components are only expected on the blood-pressure panel")
    if "valueQuantity" not in obs:
        err(("valueQuantity",), "the hub delivers measured values: valueQuantity is required")
    return errors


def validate_observation(resource: dict[str, Any], *, require_subject: bool = True) -> list[FieldError]:
    """Everything the hub checks before an Observation may be queued; empty list = valid."""
    if resource.get("resourceType") != "Observation":
        return [FieldError(("resourceType",), "expected an Observation", "fhir.structure")]
    errors = structural_errors(resource)
    if errors:
        return errors
    return _one_per_element(
        vital_signs_errors(resource, require_subject=require_subject)
        + hub_rule_errors(resource, require_subject=require_subject)
    )


def _one_per_element(errors: list[FieldError]) -> list[FieldError]:
    """The profile and the hub rules may both object to one element; the first (profile) one is kept."""
    seen: set[Loc] = set()
    out: list[FieldError] = []
    for e in errors:
        if e.loc not in seen:
            seen.add(e.loc)
            out.append(e)
    return out


def validate_any(resource: dict[str, Any], *, hub_rules: bool = False) -> list[FieldError]:
    """For ``vitalbridge fhir validate``: any R4 resource; vital-signs Observations get the profile too.

    Observations inside a Bundle's entries are checked against the profile as well. ``hub_rules``
    adds the hub's own delivery rules to every Observation.
    """
    errors = structural_errors(resource)
    if errors:
        return errors
    targets: list[tuple[dict[str, Any], Loc]] = []
    if resource.get("resourceType") == "Observation":
        targets.append((resource, ("Observation",)))
    if resource.get("resourceType") == "Bundle":
        for i, entry in enumerate(resource.get("entry") or []):
            inner = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(inner, dict) and inner.get("resourceType") == "Observation":
                targets.append((inner, ("Bundle", "entry", i, "resource")))
    for obs, root in targets:
        if _is_vital_sign(obs):
            errors.extend(vital_signs_errors(obs, root=root))
        if hub_rules:
            errors.extend(hub_rule_errors(obs, root=root))
    return _one_per_element(errors)


def _is_vital_sign(obs: dict[str, Any]) -> bool:
    """In the vital-signs category, or claiming the R4 vital-signs profile (or one derived from it)."""
    meta = obs.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    claims = any(isinstance(p, str) and p.split("|")[0] in VITAL_SIGNS_PROFILES for p in profiles or [])
    return claims or any(
        ObservationCategory.vital_signs in _codes(c, OBSERVATION_CATEGORY_SYSTEM) for c in obs.get("category") or []
    )
