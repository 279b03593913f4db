"""``vitalbridge fhir validate FILE…`` exits non-zero and names element paths on failure."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from vitalbridge.cli import app

SAMPLES = Path(__file__).parent / "samples"
runner = CliRunner()


def test_valid_file_passes() -> None:
    result = runner.invoke(app, ["fhir", "validate", str(SAMPLES / "bp_valid.json")])
    assert result.exit_code == 0, result.output
    assert "ok (Observation)" in result.output


def test_invalid_files_fail_with_element_paths(tmp_path: Path) -> None:
    not_json = tmp_path / "broken.json"
    not_json.write_text("{")
    result = runner.invoke(
        app,
        [
            "fhir",
            "validate",
            "--hub-rules",
            str(SAMPLES / "bp_valid.json"),
            str(SAMPLES / "bp_pulse_as_component.json"),
            str(SAMPLES / "weight_bad_datatype.ndjson"),
            str(SAMPLES / "bundle_with_invalid_entry.json"),
            str(not_json),
            str(tmp_path / "missing.json"),
        ],
    )
    assert result.exit_code == 1
    out = result.output
    assert "bp_pulse_as_component.json: Observation.component[0].valueQuantity.code" in out
    assert "bp_pulse_as_component.json: Observation.component[2].code" in out
    assert "weight_bad_datatype.ndjson:1: ok" in out
    assert "weight_bad_datatype.ndjson:2: Observation.valueQuantity.value" in out
    assert "bundle_with_invalid_entry.json: Bundle.entry[1].resource.subject" in out
    assert "Bundle.entry[0]" not in out
    assert "broken.json: not JSON" in out
    assert "missing.json: cannot read" in result.output
