"""FHIR R4 JSON rules that the fhir.resources models do not enforce (FHIR R4 §2.6.2 JSON
representation of primitive types; §4.1 terminology bindings, "required").

fhir.resources validates in pydantic's lax mode, so ``"value": "95"`` becomes the decimal 95 and
``"active": "true"`` becomes True; strict mode does not help (the FHIR primitive types bring their
own coercing validators). The official validator refuses both: in JSON, ``decimal``, ``integer``,
``positiveInt`` and ``unsignedInt`` are JSON numbers, ``boolean`` is ``true``/``false`` and every other
primitive is a JSON string. This module walks the resource alongside its model classes and checks
exactly that.

It also checks codes with a *required* binding on ``status`` and a few datatype elements (gender,
Identifier.use, Quantity.comparator …). fhir.resources records the codes of such an element in
``enum_values`` when the spec lists them all; for the status elements whose short definition ends
in ``+`` (the list was abbreviated) the full R4 4.0.1 value sets are written out below.
"""

from __future__ import annotations

import decimal
import functools
import types
import typing
from dataclasses import dataclass
from typing import Any

from fhir_core.fhirabstractmodel import FHIRAbstractModel

from vitalbridge.errors import FieldError

Loc = tuple[str | int, ...]

_OBSERVATION_STATUS = frozenset(
    {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}
)
_ENCOUNTER_STATUS = frozenset(
    {"planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled", "entered-in-error", "unknown"}
)
# R4 4.0.1 required value sets of the status elements fhir.resources abbreviates with "+".
FULL_STATUS_CODES: dict[str, frozenset[str]] = {
    "Observation": _OBSERVATION_STATUS,  # ObservationStatus
    "DetectedIssue": _OBSERVATION_STATUS,  # ObservationStatus
    "RiskAssessment": _OBSERVATION_STATUS,  # ObservationStatus
    "DiagnosticReport": frozenset(  # DiagnosticReportStatus
        {
            "registered",
            "partial",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "appended",
            "cancelled",
            "entered-in-error",
            "unknown",
        }
    ),
    "Encounter": _ENCOUNTER_STATUS,  # EncounterStatus
    "EncounterStatusHistory": _ENCOUNTER_STATUS,  # EncounterStatus
    "DeviceUseStatement": frozenset(  # DeviceUseStatementStatus
        {"active", "completed", "entered-in-error", "intended", "stopped", "on-hold"}
    ),
    "SupplyRequest": frozenset(  # SupplyRequestStatus
        {"draft", "active", "suspended", "cancelled", "completed", "entered-in-error", "unknown"}
    ),
    "Task": frozenset(  # TaskStatus
        {
            "draft",
            "requested",
            "received",
            "accepted",
            "rejected",
            "ready",
            "cancelled",
            "in-progress",
            "on-hold",
            "failed",
            "completed",
            "entered-in-error",
        }
    ),
}
# Elements, besides every ``status``, whose required binding is checked: (model, element) or any model.
_BOUND_ELEMENTS = frozenset(
    {
        ("*", "status"),
        ("*", "gender"),
        ("Bundle", "type"),
        ("Quantity", "comparator"),
        ("Identifier", "use"),
        ("HumanName", "use"),
        ("ContactPoint", "system"),
        ("ContactPoint", "use"),
        ("Address", "use"),
        ("Address", "type"),
    }
)


@dataclass(frozen=True)
class _Spec:
    """How one element is written in JSON."""

    is_list: bool
    kind: str  # "boolean" | "number" | "integer" | "string" | "complex" | "resource" | "any"
    model: type[FHIRAbstractModel] | None = None
    codes: frozenset[str] | None = None


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _spec(owner: str, name: str, annotation: Any, extra: Any) -> _Spec:
    inner = _strip_optional(annotation)
    is_list = typing.get_origin(inner) in (list, typing.List)  # noqa: UP006 - fhir.resources uses typing.List
    if is_list:
        inner = _strip_optional(typing.get_args(inner)[0])
    base = typing.get_args(inner)[0] if typing.get_origin(inner) is typing.Annotated else inner
    codes: frozenset[str] | None = None
    if ("*", name) in _BOUND_ELEMENTS or (owner, name) in _BOUND_ELEMENTS:
        listed = extra.get("enum_values") if isinstance(extra, dict) else None
        if name == "status" and owner in FULL_STATUS_CODES:
            codes = FULL_STATUS_CODES[owner]
        elif isinstance(listed, list) and listed and "+" not in listed:
            codes = frozenset(str(c) for c in listed)
    if base is bool:
        return _Spec(is_list, "boolean")
    if base is decimal.Decimal:
        return _Spec(is_list, "number")
    if base is int:
        return _Spec(is_list, "integer")
    get_model = getattr(base, "get_model_klass", None)
    if callable(get_model):
        model = get_model()
        if getattr(base, "__name__", "") == "ResourceType":
            return _Spec(is_list, "resource")
        return _Spec(is_list, "complex", model=model)
    if getattr(base, "__name__", "") == "str" or typing.get_origin(inner) is typing.Annotated:
        return _Spec(is_list, "string", codes=codes)
    return _Spec(is_list, "any")


@functools.cache
def _specs(model: type[FHIRAbstractModel]) -> dict[str, _Spec]:
    owner = model.__name__  # "Observation", "ObservationComponent", "Quantity" …
    out: dict[str, _Spec] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        if alias.startswith("_") or alias in ("resourceType", "fhir_comments"):
            continue  # primitive extensions (_status …) are objects the model validates itself
        out[alias] = _spec(owner, name, info.annotation, info.json_schema_extra)
    return out


_JSON_NAMES = {"boolean": "true or false", "number": "a JSON number", "integer": "a JSON integer"}


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    return True


def json_rule_errors(model: type[FHIRAbstractModel], data: Any, loc: Loc, resolve: Any) -> list[FieldError]:
    """Errors for ``data`` (a JSON object of ``model``); ``resolve(resourceType)`` → model class or None."""
    if not isinstance(data, dict):
        return []
    errors: list[FieldError] = []
    specs = _specs(model)
    for key, value in data.items():
        spec = specs.get(key)
        if spec is None:
            continue  # unknown elements are the model's to report
        here = (*loc, key)
        if spec.is_list:
            if not isinstance(value, list):
                errors.append(FieldError(here, "must be a JSON array", "fhir.json"))
                continue
            items: list[tuple[Loc, Any]] = [((*here, i), v) for i, v in enumerate(value)]
        else:
            items = [(here, value)]
        for where, item in items:
            if item is None and spec.is_list:
                continue  # a null keeps a primitive array aligned with its _element extensions
            errors += _item_errors(spec, item, where, resolve)
    return errors


def _item_errors(spec: _Spec, item: Any, where: Loc, resolve: Any) -> list[FieldError]:
    if spec.kind == "complex" and spec.model is not None:
        return json_rule_errors(spec.model, item, where, resolve)
    if spec.kind == "resource":
        rtype = item.get("resourceType") if isinstance(item, dict) else None
        inner = resolve(rtype) if isinstance(rtype, str) else None
        return json_rule_errors(inner, item, where, resolve) if inner is not None else []
    if not _type_ok(spec.kind, item):
        return [FieldError(where, f"must be {_JSON_NAMES.get(spec.kind, 'a JSON string')}", "fhir.json")]
    if spec.codes is not None and item not in spec.codes:
        # The value set names the allowed codes; the submitted value is not echoed.
        return [
            FieldError(where, "code is not in the required value set: " + ", ".join(sorted(spec.codes)), "fhir.code")
        ]
    return []
