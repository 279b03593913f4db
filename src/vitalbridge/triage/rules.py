"""Triage rules (SPEC §6): their document format, the hub defaults, merging, and evaluation.

Rules live in three layers, merged by rule ``code`` (later wins, field by field):

1. ``DEFAULT_RULES`` below (what every patient gets);
2. the program's ``Program.rules`` (e.g. a CHF program tightening weight trends);
3. the patient's overrides (``PUT /api/v1/patients/{id}/thresholds``).

A layer may change one field of an inherited rule (``{"code": "spo2_low", "levels": [...]}``),
disable it (``{"code": "spo2_low", "enabled": false}``) or add a new rule (then complete).
Pure functions: no database here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vitalbridge.errors import FieldError
from vitalbridge.triage.codes import MISSED_READINGS, Direction, Metric, Severity

log = structlog.get_logger(__name__)
_CODE = r"^[a-z][a-z0-9_]{1,63}$"


class ThresholdLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: Severity
    value: float
    inclusive: bool = True  # ≥ / ≤ when true, > / < when false


class ThresholdRule(BaseModel):
    """Breach when the metric crosses a level; the most severe level crossed wins."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=_CODE)
    metric: Metric
    direction: Direction
    levels: list[ThresholdLevel] = Field(min_length=1, max_length=5)
    enabled: bool = True

    def breached(self, value: float) -> ThresholdLevel | None:
        hits = [lvl for lvl in self.levels if _crosses(value, lvl, self.direction)]
        return max(hits, key=lambda lvl: lvl.severity.rank) if hits else None


class TrendRule(BaseModel):
    """Breach when the metric rose by ``rise`` or more above its lowest value in the preceding window."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=_CODE)
    metric: Metric = Metric.body_weight
    rise: float = Field(gt=0)
    window_hours: float = Field(gt=0, le=24 * 31)
    severity: Severity
    enabled: bool = True

    @property
    def window(self) -> timedelta:
        return timedelta(hours=self.window_hours)


class MissedRule(BaseModel):
    """Breach when a patient with an assigned device sent nothing for ``days``."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(default=MISSED_READINGS, pattern=_CODE)
    days: float = Field(gt=0, le=90)
    severity: Severity
    enabled: bool = True


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thresholds: list[ThresholdRule] = Field(default_factory=list)
    trends: list[TrendRule] = Field(default_factory=list)
    missed: MissedRule | None = None

    def thresholds_for(self, metric: Metric) -> list[ThresholdRule]:
        return [r for r in self.thresholds if r.enabled and r.metric is metric]

    def trends_for(self, metric: Metric) -> list[TrendRule]:
        return [r for r in self.trends if r.enabled and r.metric is metric]


def _crosses(value: float, level: ThresholdLevel, direction: Direction) -> bool:
    if direction is Direction.above:
        return value >= level.value if level.inclusive else value > level.value
    return value <= level.value if level.inclusive else value < level.value


def _lvl(severity: Severity, value: float, inclusive: bool = True) -> dict[str, Any]:
    return {"severity": severity.value, "value": value, "inclusive": inclusive}


# Hub defaults. Sources: SPEC §6 (systolic ≥ 180 or ≤ 90 critical; weight +2 kg/24 h, +2.5 kg/7 d);
# ACC/AHA 2017 (hypertensive crisis > 180/120; stage 2 from 140/90, so 160 is "high" well beyond it);
# ADA Standards of Care (hypoglycaemia level 1 < 70, level 2 < 54 mg/dL); SpO2 < 88 % is the usual
# home-oxygen threshold (critical), < 92 % a common RPM "call the patient" level.
DEFAULT_RULES: dict[str, Any] = {
    "thresholds": [
        {
            "code": "bp_systolic_high",
            "metric": "systolic",
            "direction": "above",
            "levels": [_lvl(Severity.high, 160), _lvl(Severity.critical, 180)],
        },
        {
            "code": "bp_systolic_low",
            "metric": "systolic",
            "direction": "below",
            "levels": [_lvl(Severity.critical, 90)],
        },
        {
            "code": "bp_diastolic_high",
            "metric": "diastolic",
            "direction": "above",
            "levels": [_lvl(Severity.high, 100), _lvl(Severity.critical, 120)],
        },
        {
            "code": "heart_rate_high",
            "metric": "heart_rate",
            "direction": "above",
            "levels": [_lvl(Severity.high, 120), _lvl(Severity.critical, 140)],
        },
        {
            "code": "heart_rate_low",
            "metric": "heart_rate",
            "direction": "below",
            "levels": [_lvl(Severity.high, 50), _lvl(Severity.critical, 40)],
        },
        {
            "code": "spo2_low",
            "metric": "spo2",
            "direction": "below",
            "levels": [_lvl(Severity.high, 92, False), _lvl(Severity.critical, 88, False)],
        },
        {
            "code": "glucose_low",
            "metric": "blood_glucose",
            "direction": "below",
            "levels": [_lvl(Severity.high, 70, False), _lvl(Severity.critical, 54, False)],
        },
        {
            "code": "glucose_high",
            "metric": "blood_glucose",
            "direction": "above",
            "levels": [_lvl(Severity.high, 250, False), _lvl(Severity.critical, 400, False)],
        },
    ],
    "trends": [
        {"code": "weight_gain_24h", "metric": "body_weight", "rise": 2.0, "window_hours": 24, "severity": "high"},
        {"code": "weight_gain_7d", "metric": "body_weight", "rise": 2.5, "window_hours": 168, "severity": "high"},
    ],
    "missed": {"code": MISSED_READINGS, "days": 3, "severity": "medium"},
}

_SECTIONS: dict[str, type[BaseModel]] = {"thresholds": ThresholdRule, "trends": TrendRule}


def _layer_items(layer: dict[str, Any], section: str) -> list[dict[str, Any]]:
    items = layer.get(section) or []
    return [i for i in items if isinstance(i, dict)]


def merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Merge rule documents by code, field by field (later layers win). No validation."""
    merged: dict[str, Any] = {"thresholds": {}, "trends": {}, "missed": None}
    for layer in layers:
        if not layer:
            continue
        for section in _SECTIONS:
            for item in _layer_items(layer, section):
                code = item.get("code")
                if isinstance(code, str):
                    merged[section][code] = {**merged[section].get(code, {}), **item}
        missed = layer.get("missed")
        if isinstance(missed, dict):
            merged["missed"] = {**(merged["missed"] or {}), **missed}
    return {
        "thresholds": list(merged["thresholds"].values()),
        "trends": list(merged["trends"].values()),
        "missed": merged["missed"],
    }


def effective(*layers: dict[str, Any]) -> RuleSet:
    """Defaults, then each layer; a stored layer that no longer validates is a configuration error."""
    return RuleSet.model_validate(merge(DEFAULT_RULES, *layers))


def effective_rules(*layers: dict[str, Any]) -> RuleSet:
    """Like ``effective`` but never fails: a layer that no longer validates (say, a patient override
    of a rule its program since dropped) is skipped from the top down, so triage keeps running on
    the layers below instead of stopping. ``check_layer`` keeps bad layers out in the first place.
    """
    for n in range(len(layers), -1, -1):
        try:
            return effective(*layers[:n])
        except ValidationError:
            log.warning("triage.rules_layer_invalid", layer=n)
    raise AssertionError("the default rules do not validate")  # pragma: no cover


def check_layer(layer: Any, *below: dict[str, Any], loc: tuple[str | int, ...] = ("body",)) -> list[FieldError]:
    """Validate an override layer against what it overrides; errors point into ``layer`` itself."""
    if not isinstance(layer, dict):
        return [FieldError(loc, "a rules document is a JSON object", "model_type")]
    errors: list[FieldError] = []
    unknown = set(layer) - {"thresholds", "trends", "missed"}
    for key in sorted(unknown):
        errors.append(
            FieldError((*loc, key), "unknown section; expected thresholds, trends or missed", "extra_forbidden")
        )
    inherited = merge(DEFAULT_RULES, *below)
    for section, model in _SECTIONS.items():
        items = layer.get(section)
        if items is None:
            continue
        if not isinstance(items, list):
            errors.append(FieldError((*loc, section), "must be a list of rules", "list_type"))
            continue
        base = {i["code"]: i for i in inherited[section]}
        seen: set[str] = set()
        for i, item in enumerate(items):
            where = (*loc, section, i)
            if not isinstance(item, dict) or not isinstance(item.get("code"), str):
                errors.append(FieldError((*where, "code"), "each rule needs a code", "missing"))
                continue
            if item["code"] in seen:
                errors.append(FieldError((*where, "code"), "rule code appears twice", "value_error"))
            seen.add(item["code"])
            errors.extend(_validate(model, {**base.get(item["code"], {}), **item}, where))
    missed = layer.get("missed")
    if missed is not None:
        if not isinstance(missed, dict):
            errors.append(FieldError((*loc, "missed"), "must be an object", "dict_type"))
        else:
            errors.extend(_validate(MissedRule, {**(inherited["missed"] or {}), **missed}, (*loc, "missed")))
    return errors


def _validate(model: type[BaseModel], doc: dict[str, Any], where: tuple[str | int, ...]) -> list[FieldError]:
    try:
        model.model_validate(doc)
    except ValidationError as exc:
        return [
            FieldError((*where, *e["loc"]), str(e["msg"]), str(e["type"]))
            for e in exc.errors(include_input=False, include_url=False)
        ]
    return []


def trend_breach(rule: TrendRule, value: float, at: datetime, history: list[tuple[datetime, float]]) -> float | None:
    """The rise over the window's lowest earlier value, if it reaches ``rule.rise``; else None."""
    earlier = [v for t, v in history if at - rule.window <= t < at]
    if not earlier:
        return None
    rise = value - min(earlier)
    # Rounded to grams: float noise (80.0 + 2.0 = 81.99999…) must not hide an exact 2 kg gain.
    return round(rise, 3) if round(rise, 3) >= rule.rise else None
