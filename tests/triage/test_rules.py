"""Rule documents: defaults, layering by code, validation located in the layer, evaluation (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vitalbridge.triage.codes import Metric, Severity
from vitalbridge.triage.rules import DEFAULT_RULES, check_layer, effective, effective_rules, merge, trend_breach


def test_default_thresholds_match_the_documented_table() -> None:
    rs = effective()
    by_code = {r.code: r for r in rs.thresholds}

    def sev(code: str, value: float) -> Severity | None:
        level = by_code[code].breached(value)
        return level.severity if level else None

    assert [sev("bp_systolic_high", v) for v in (159, 160, 179, 180)] == [
        None,
        Severity.high,
        Severity.high,
        Severity.critical,
    ]
    assert [sev("bp_systolic_low", v) for v in (91, 90)] == [None, Severity.critical]
    assert [sev("bp_diastolic_high", v) for v in (99, 100, 120)] == [None, Severity.high, Severity.critical]
    assert [sev("spo2_low", v) for v in (92, 91, 88, 87)] == [None, Severity.high, Severity.high, Severity.critical]
    assert [sev("glucose_low", v) for v in (70, 69, 54, 53)] == [None, Severity.high, Severity.high, Severity.critical]
    assert [sev("glucose_high", v) for v in (250, 251, 400, 401)] == [
        None,
        Severity.high,
        Severity.high,
        Severity.critical,
    ]
    assert [sev("heart_rate_low", v) for v in (51, 50, 40)] == [None, Severity.high, Severity.critical]
    assert {r.code for r in rs.trends} == {"weight_gain_24h", "weight_gain_7d"}
    assert rs.missed is not None
    assert rs.missed.days == 3
    assert [r.code for r in rs.thresholds_for(Metric.systolic)] == ["bp_systolic_high", "bp_systolic_low"]


def test_layers_merge_field_by_field_by_code() -> None:
    program = {"thresholds": [{"code": "bp_systolic_high", "levels": [{"severity": "high", "value": 150}]}]}
    patient = {
        "thresholds": [
            {"code": "spo2_low", "enabled": False},
            {
                "code": "glucose_very_high",
                "metric": "blood_glucose",
                "direction": "above",
                "levels": [{"severity": "critical", "value": 300}],
            },
        ],
        "trends": [{"code": "weight_gain_24h", "rise": 1.5}],
        "missed": {"days": 1},
    }
    rs = effective(program, patient)
    by_code = {r.code: r for r in rs.thresholds}
    assert by_code["bp_systolic_high"].metric is Metric.systolic  # inherited from the defaults
    assert [lvl.value for lvl in by_code["bp_systolic_high"].levels] == [150]  # replaced by the program
    assert by_code["spo2_low"].enabled is False
    assert rs.thresholds_for(Metric.spo2) == []
    assert by_code["glucose_very_high"].levels[0].severity is Severity.critical
    assert next(t for t in rs.trends if t.code == "weight_gain_24h").rise == 1.5
    assert rs.missed is not None
    assert (rs.missed.days, rs.missed.severity) == (1, Severity.medium)
    assert merge(DEFAULT_RULES)["thresholds"] == DEFAULT_RULES["thresholds"]


def test_check_layer_locates_errors_inside_the_submitted_document() -> None:
    layer = {
        "thresholds": [
            {"code": "spo2_low", "levels": [{"severity": "urgent", "value": 90}]},
            {"code": "new_rule", "metric": "systolic"},
            {"metric": "systolic"},
            {"code": "spo2_low", "enabled": False},
        ],
        "trends": "nope",
        "missed": {"days": 0},
        "colour": {},
    }
    locs = {e.loc for e in check_layer(layer)}
    assert ("body", "thresholds", 0, "levels", 0, "severity") in locs
    assert ("body", "thresholds", 1, "direction") in locs
    assert ("body", "thresholds", 1, "levels") in locs
    assert ("body", "thresholds", 2, "code") in locs
    assert ("body", "thresholds", 3, "code") in locs  # the same code twice
    assert ("body", "trends") in locs
    assert ("body", "missed", "days") in locs
    assert ("body", "colour") in locs
    assert check_layer({"thresholds": [{"code": "spo2_low", "enabled": False}]}) == []
    # A partial rule is fine when a lower layer defines the rest.
    program = {
        "thresholds": [
            {"code": "custom", "metric": "spo2", "direction": "below", "levels": [{"severity": "low", "value": 94}]}
        ]
    }
    assert check_layer({"thresholds": [{"code": "custom", "enabled": False}]}, program) == []
    assert check_layer({"thresholds": [{"code": "custom", "enabled": False}]}) != []


def test_a_stale_patient_layer_falls_back_instead_of_stopping_triage() -> None:
    # The patient overrode a program rule the program has since dropped: the override alone is incomplete.
    stale = {"thresholds": [{"code": "program_only", "levels": [{"severity": "high", "value": 1}]}]}
    rs = effective_rules({}, stale)
    assert "program_only" not in {r.code for r in rs.thresholds}
    assert {r.code for r in rs.thresholds} == {r["code"] for r in DEFAULT_RULES["thresholds"]}


def test_trend_compares_with_the_lowest_earlier_value_in_the_window() -> None:
    rule = next(t for t in effective().trends if t.code == "weight_gain_24h")
    now = datetime(2025, 3, 2, 8, tzinfo=UTC)
    history = [(now - timedelta(hours=30), 70.0), (now - timedelta(hours=20), 80.0), (now - timedelta(hours=2), 81.0)]
    assert trend_breach(rule, 82.0, now, history) == 2.0  # against 80.0 (the 70 is outside 24 h)
    assert trend_breach(rule, 81.9, now, history) is None
    assert trend_breach(rule, 90.0, now, []) is None  # nothing to compare with
    assert trend_breach(rule, 90.0, now, [(now, 10.0)]) is None  # not earlier: ignored
