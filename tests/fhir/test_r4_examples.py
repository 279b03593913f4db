"""``fhir validate`` against the official FHIR R4 examples (tests/fhir/samples/r4-examples, see its
README for provenance): valid R4 passes without the hub's own rules, structural rules the models do
not enforce (JSON types, required bindings) fail, and the hub's rules apply only with --hub-rules."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vitalbridge.cli import app
from vitalbridge.fhir.validation import element_path, validate_any, validate_observation

EXAMPLES = Path(__file__).parent / "samples" / "r4-examples"
runner = CliRunner()
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return loaded


def paths(resource: dict[str, Any], *, hub_rules: bool = False) -> list[str]:
    return [element_path(e.loc) for e in validate_any(resource, hub_rules=hub_rules)]


ALL = sorted(p.name for p in EXAMPLES.glob("*.json"))


@pytest.mark.parametrize("name", ALL)
def test_every_official_example_is_valid_r4(name: str) -> None:
    assert paths(example(name)) == []


def test_cli_passes_the_official_examples_and_applies_hub_rules_only_on_request() -> None:
    files = [str(EXAMPLES / n) for n in ALL]
    plain = runner.invoke(app, ["fhir", "validate", *files])
    assert plain.exit_code == 0, plain.output
    assert plain.output.count(": ok (") == len(ALL)
    strict = runner.invoke(app, ["fhir", "validate", "--hub-rules", *files])
    assert strict.exit_code == 1
    assert "observation-example-heart-rate.json: Observation.identifier" in strict.output
    assert "observation-example-vitals-panel.json: Observation.hasMember" in strict.output
    assert "observation-example-bloodpressure-dar.json: Observation.component[1].valueQuantity" in strict.output
    assert "observation-example-bloodpressure.json: ok (Observation)" in strict.output


def test_hub_delivery_still_refuses_what_it_cannot_deliver() -> None:
    # The outbox and device ingest keep all three layers.
    assert "Observation.identifier" in [
        element_path(e.loc) for e in validate_observation(example("observation-example-heart-rate.json"))
    ]
    assert validate_observation(example("observation-example-bloodpressure.json")) == []


def _set(resource: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    target: Any = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("name", "path", "value", "expected"),
    [
        # R4 §2.6.2 JSON: decimal is a JSON number, not a string.
        ("observation-example-heart-rate.json", ("valueQuantity", "value"), "44", "Observation.valueQuantity.value"),
        (
            "observation-example-satO2.json",
            ("referenceRange", 0, "low", "value"),
            "90",
            "Observation.referenceRange[0].low.value",
        ),
        # boolean is true/false.
        ("patient-example.json", ("active",), "true", "Patient.active"),
        ("patient-example.json", ("deceasedBoolean",), 0, "Patient.deceasedBoolean"),
        # integer / positiveInt are JSON integers.
        ("patient-example.json", ("telecom", 1, "rank"), "1", "Patient.telecom[1].rank"),
        # strings are JSON strings.
        ("patient-example.json", ("gender",), 1, "Patient.gender"),
        # Required bindings: ObservationStatus, AdministrativeGender, IdentifierUse, NameUse.
        ("observation-example-heart-rate.json", ("status",), "bogus", "Observation.status"),
        ("observation-example-heart-rate.json", ("status",), "Final", "Observation.status"),
        ("patient-example.json", ("gender",), "M", "Patient.gender"),
        ("patient-example.json", ("identifier", 0, "use"), "primary", "Patient.identifier[0].use"),
        ("patient-example.json", ("name", 0, "use"), "legal", "Patient.name[0].use"),
        # R4 vital-signs vs-1: effectiveDateTime at least to the day.
        ("observation-example-heart-rate.json", ("effectiveDateTime",), "1999-07", "Observation.effectiveDateTime"),
    ],
)
def test_structural_rules_the_models_do_not_enforce(
    name: str, path: tuple[str | int, ...], value: Any, expected: str
) -> None:
    assert expected in paths(_set(example(name), path, value))


def test_vs2_and_vs3_need_a_value_or_a_data_absent_reason() -> None:
    hr = example("observation-example-heart-rate.json")
    del hr["valueQuantity"]
    assert paths(hr) == ["Observation.value[x]"]
    hr["dataAbsentReason"] = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "error"}]
    }
    assert paths(hr) == []
    dar = example("observation-example-bloodpressure-dar.json")
    del dar["component"][1]["dataAbsentReason"]
    assert paths(dar) == ["Observation.component[1]"]


def test_other_resource_types_and_required_status_codes() -> None:
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    }
    assert paths(encounter) == []
    assert paths(encounter | {"status": "done"}) == ["Encounter.status"]
    report = {"resourceType": "DiagnosticReport", "status": "appended", "code": {"text": "x"}}
    assert paths(report) == []
    assert paths(report | {"status": "bogus"}) == ["DiagnosticReport.status"]
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": example("observation-example-heart-rate.json")}],
    }
    assert paths(bundle) == []
    bundle["entry"][0]["resource"]["valueQuantity"]["value"] = "44"
    assert paths(bundle) == ["Bundle.entry[0].resource.valueQuantity.value"]
    assert paths(bundle | {"type": "pile"})[0] == "Bundle.type"


@pytest.mark.parametrize("rtype", ["Foo", "Quantity", "observation", ""])
def test_unknown_resource_type_is_an_error_not_a_traceback(tmp_path: Path, rtype: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"resourceType": rtype, "id": "1"}))
    result = runner.invoke(app, ["fhir", "validate", str(path)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "resourceType" in result.output
    assert "Traceback" not in result.output
