"""Observation validation: FHIR R4 structure (fhir.resources) plus the Vital Signs profile
(FHIR R4 §observation-vitalsigns; SPEC §5, §7 "validated against FHIR R4 and the vital-signs
profile"). Every problem becomes one OperationOutcome issue whose ``expression`` names the
failing element, e.g. ``Observation.valueQuantity.code``, so the sender can fix it.

fhir.resources 8 ships R5 at its top level; its ``R4B`` package is the release whose Observation
and Patient match R4 (4.0.1), so that is what the sandbox validates with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError

from vitalbridge.sandbox.errors import Issue
from vitalbridge.sandbox.fhir.vital_signs import (
    ACCEPTED,
    BP_COMPONENTS,
    CATEGORY_SYSTEM,
    LOINC_SYSTEM,
    STATUSES,
    UCUM_SYSTEM,
    UNITS,
    Loinc,
)

EFFECTIVE = ("effectiveDateTime", "effectivePeriod", "effectiveInstant", "effectiveTiming")
# Outcome of looking a subject up: None when it is fine, else the issue to report.
SubjectCheck = Callable[[str], Issue | None]


def _path(loc: tuple[int | str, ...]) -> str:
    path = "Observation"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def structural_issues(body: dict[str, Any]) -> list[Issue]:
    try:
        Observation.model_validate(body)
    except ValidationError as exc:
        return [
            Issue("structure", f"{_path(tuple(e['loc']))}: {e['msg']}", (_path(tuple(e["loc"])),))
            for e in exc.errors(include_url=False)
        ]
    return []


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict) or not isinstance(concept.get("coding"), list):
        return []
    return [c for c in concept["coding"] if isinstance(c, dict)]


def _quantity_issues(quantity: Any, code: Loinc, where: str) -> list[Issue]:
    if not isinstance(quantity, dict):
        return [Issue("required", f"{where} is required for LOINC {code.value}", (where,))]
    issues = []
    if not isinstance(quantity.get("value"), int | float) or isinstance(quantity.get("value"), bool):
        issues.append(Issue("required", f"{where}.value must be a number", (f"{where}.value",)))
    if quantity.get("system") != UCUM_SYSTEM:
        issues.append(Issue("value", f"{where}.system must be {UCUM_SYSTEM} (UCUM)", (f"{where}.system",)))
    allowed = UNITS[code]
    if quantity.get("code") not in allowed:
        issues.append(
            Issue(
                "code-invalid",
                f"{where}.code {quantity.get('code')!r} is not a UCUM unit for LOINC {code.value}; "
                f"use {' or '.join(sorted(allowed))}",
                (f"{where}.code",),
            )
        )
    return issues


def _loinc(concept: Any) -> tuple[Loinc | None, list[str]]:
    """The accepted LOINC code in a CodeableConcept, and any LOINC codes seen at all."""
    seen = [c.get("code") for c in _codings(concept) if c.get("system") == LOINC_SYSTEM]
    for code in seen:
        if code in ACCEPTED:
            return Loinc(code), [str(c) for c in seen]
    return None, [str(c) for c in seen]


def profile_issues(body: dict[str, Any], check_subject: SubjectCheck) -> list[Issue]:
    issues: list[Issue] = []
    status = body.get("status")
    if status is None:
        issues.append(Issue("required", "Observation.status is required", ("Observation.status",)))
    elif status not in STATUSES:
        issues.append(
            Issue("code-invalid", f"Observation.status {status!r} is not an ObservationStatus", ("Observation.status",))
        )

    raw_categories = body.get("category")
    categories: list[Any] = raw_categories if isinstance(raw_categories, list) else []
    if not any(
        c.get("system") == CATEGORY_SYSTEM and c.get("code") == "vital-signs"
        for cat in categories
        for c in _codings(cat)
    ):
        issues.append(
            Issue(
                "required",
                f"Observation.category must include vital-signs from {CATEGORY_SYSTEM}",
                ("Observation.category",),
            )
        )

    code, seen = _loinc(body.get("code"))
    if code is None:
        detail = f"LOINC {', '.join(seen)} is not a vital sign this server accepts" if seen else "no LOINC coding"
        issues.append(
            Issue(
                "code-invalid",
                f"Observation.code: {detail}; accepted: {', '.join(sorted(ACCEPTED))}",
                ("Observation.code.coding",),
            )
        )
    elif code is Loinc.bp_panel:
        issues.extend(_bp_components(body.get("component")))
    elif "valueQuantity" in body or "dataAbsentReason" not in body:
        issues.extend(_quantity_issues(body.get("valueQuantity"), code, "Observation.valueQuantity"))

    subject = body.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str) or not reference:
        issues.append(
            Issue("required", "Observation.subject.reference (Patient/{id}) is required", ("Observation.subject",))
        )
    else:
        problem = check_subject(reference)
        if problem is not None:
            issues.append(problem)

    if not any(name in body for name in EFFECTIVE):
        issues.append(
            Issue(
                "required",
                "Observation.effective[x] is required (e.g. effectiveDateTime)",
                ("Observation.effective[x]",),
            )
        )
    return issues


def _bp_components(components: Any) -> list[Issue]:
    if not isinstance(components, list):
        return [
            Issue(
                "required",
                "a blood pressure panel carries systolic and diastolic components",
                ("Observation.component",),
            )
        ]
    issues: list[Issue] = []
    found: set[Loinc] = set()
    for i, component in enumerate(components):
        where = f"Observation.component[{i}]"
        code, _seen = _loinc(component.get("code") if isinstance(component, dict) else None)
        if code not in BP_COMPONENTS:
            issues.append(Issue("code-invalid", f"{where}.code must be LOINC 8480-6 or 8462-4", (f"{where}.code",)))
            continue
        assert code is not None
        found.add(code)
        if "valueQuantity" in component or "dataAbsentReason" not in component:
            # R4 vital-signs vs-3: a component without a value carries a dataAbsentReason instead.
            issues.extend(_quantity_issues(component.get("valueQuantity"), code, f"{where}.valueQuantity"))
    for needed in BP_COMPONENTS:
        if needed not in found:
            issues.append(
                Issue(
                    "required",
                    f"Observation.component lacks {needed.name} ({needed.value})",
                    ("Observation.component",),
                )
            )
    return issues


def validate_observation(body: dict[str, Any], check_subject: SubjectCheck) -> list[Issue]:
    """All problems at once: structure first, then the profile (duplicates dropped)."""
    issues = structural_issues(body) + profile_issues(body, check_subject)
    unique: dict[tuple[str, tuple[str, ...]], Issue] = {}
    for issue in issues:
        unique.setdefault((issue.diagnostics, issue.expression), issue)
    return list(unique.values())
