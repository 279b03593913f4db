"""Every reading type becomes R4 vital-signs Observations with the SPEC §5 codes, validated before queueing."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation

from vitalbridge.devices.gateways import GatewayKind, adapter_for
from vitalbridge.devices.normalize import normalise_reading
from vitalbridge.devices.readings import NormalizedReading
from vitalbridge.fhir.codes import LOINC_SYSTEM, UCUM_SYSTEM, Loinc
from vitalbridge.fhir.observation import ObservationInput, build_observation, identifier_token, with_subject
from vitalbridge.fhir.validation import element_path, validate_observation

DEVICE_SAMPLES = Path(__file__).parent.parent / "devices" / "samples"
NOW = datetime(2025, 3, 2, tzinfo=UTC)
BASE = "https://hub.example.org/fhir/identifier"


def observations(
    sample: str, *, ehr_id: str | None = "ehr-1001", glucose: Loinc = Loinc.glucose_blood
) -> list[dict[str, Any]]:
    parsed = adapter_for(GatewayKind.mioconnect).parse_webhook((DEVICE_SAMPLES / sample).read_bytes())
    normalised = normalise_reading(parsed.readings[0], NOW)
    assert isinstance(normalised, NormalizedReading), normalised
    src = normalised.source
    return [
        build_observation(
            ObservationInput(
                measurement_id=f"m{i}",
                kind=m.kind,
                unit=m.unit,
                effective=src.measured_at,
                device=src.device,
                identifier_base=BASE,
                value=m.value,
                systolic=m.systolic,
                diastolic=m.diastolic,
                patient_ehr_id=ehr_id,
                irregular_heartbeat=src.irregular_heartbeat,
                meal_context=src.meal_context,
                glucose_code=glucose,
            )
        )
        for i, m in enumerate(normalised.measurements)
    ]


def loincs(obs: dict[str, Any]) -> list[str]:
    return [c["code"] for c in obs["code"]["coding"] if c["system"] == LOINC_SYSTEM]


def common(obs: dict[str, Any]) -> None:
    assert validate_observation(obs) == []
    Observation.model_validate(obs)  # the R4 (R4B) structural model, directly
    assert obs["status"] == "final"
    assert obs["category"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": "vital-signs",
        "display": "Vital Signs",
    }
    assert obs["subject"] == {"reference": "Patient/ehr-1001"}
    assert obs["identifier"][0]["system"] == f"{BASE}/measurement"
    assert obs["device"]["identifier"]["system"] == f"{BASE}/device"


def test_blood_pressure_with_pulse_is_two_observations() -> None:
    bp, hr = observations("blood_pressure_with_pulse.json")
    for obs in (bp, hr):
        common(obs)
    assert loincs(bp) == [Loinc.blood_pressure_panel]
    assert "valueQuantity" not in bp
    assert [(c["code"]["coding"][0]["code"], c["valueQuantity"]) for c in bp["component"]] == [
        ("8480-6", {"value": 138, "unit": "mmHg", "system": UCUM_SYSTEM, "code": "mm[Hg]"}),
        ("8462-4", {"value": 88, "unit": "mmHg", "system": UCUM_SYSTEM, "code": "mm[Hg]"}),
    ]
    assert loincs(hr) == [Loinc.heart_rate]
    assert hr["valueQuantity"] == {"value": 72, "unit": "beats/minute", "system": UCUM_SYSTEM, "code": "/min"}
    assert bp["effectiveDateTime"] == "2025-03-01T08:15:00-05:00"  # the patient's local time, offset kept
    assert bp["device"] == {
        "identifier": {"system": f"{BASE}/device", "value": "356938035643809"},
        "display": "A&D UA-651BLE",
    }
    assert bp["identifier"][0]["value"] != hr["identifier"][0]["value"]


def test_pulse_oximetry_carries_both_spo2_codes_and_its_own_heart_rate() -> None:
    spo2, hr = observations("pulse_oximetry.json")
    common(spo2)
    common(hr)
    assert loincs(spo2) == [Loinc.spo2_pulse_oximetry, Loinc.oxygen_saturation]
    assert spo2["valueQuantity"]["code"] == "%"
    assert loincs(hr) == [Loinc.heart_rate]


def test_weight_in_pounds_is_sent_in_kilograms() -> None:
    (obs,) = observations("weight_lb.json")
    common(obs)
    assert loincs(obs) == [Loinc.body_weight]
    assert obs["valueQuantity"] == {"value": 82.74, "unit": "kg", "system": UCUM_SYSTEM, "code": "kg"}


def test_glucose_in_mmol_is_sent_in_mg_per_dl_with_the_configured_code_and_meal_note() -> None:
    (obs,) = observations("glucose_mmol.json")
    common(obs)
    assert loincs(obs) == [Loinc.glucose_blood]
    assert obs["valueQuantity"]["code"] == "mg/dL"
    assert obs["valueQuantity"]["value"] == 100.9
    assert obs["note"] == [{"text": "Measured fasting"}]
    assert "meta" not in obs  # glucose is no vital sign: no profile claim
    (glucometer,) = observations("glucose_mmol.json", glucose=Loinc.glucose_glucometer)
    assert loincs(glucometer) == [Loinc.glucose_glucometer]
    assert validate_observation(glucometer) == []


def test_without_an_ehr_id_there_is_no_subject_until_one_is_added() -> None:
    (obs,) = observations("weight_lb.json", ehr_id=None)
    assert "subject" not in obs
    assert validate_observation(obs, require_subject=False) == []
    assert [element_path(e.loc) for e in validate_observation(obs)] == ["Observation.subject"]
    linked = with_subject(obs, "ehr-77")
    assert linked["subject"] == {"reference": "Patient/ehr-77"}
    assert validate_observation(linked) == []
    assert identifier_token(linked) == f"{BASE}/measurement|m0"


def _paths(obs: dict[str, Any]) -> set[str]:
    return {element_path(e.loc) for e in validate_observation(obs)}


def test_profile_checks_catch_what_the_structural_model_accepts() -> None:
    bp, hr = observations("blood_pressure_with_pulse.json")
    pulse_component = copy.deepcopy(bp)
    pulse_component["component"].append({"code": hr["code"], "valueQuantity": hr["valueQuantity"]})
    assert "Observation.component[2].code" in _paths(pulse_component)
    Observation.model_validate(pulse_component)  # structurally fine: only the profile check refuses it

    wrong_unit = copy.deepcopy(hr)
    wrong_unit["valueQuantity"]["code"] = "Hz"
    assert _paths(wrong_unit) == {"Observation.valueQuantity.code"}

    bogus_status = copy.deepcopy(hr)
    bogus_status["status"] = "done"
    Observation.model_validate(bogus_status)  # fhir.resources does not enforce the required binding
    assert _paths(bogus_status) == {"Observation.status"}

    no_category = copy.deepcopy(hr)
    no_category["category"] = [{"text": "vitals"}]
    assert _paths(no_category) == {"Observation.category"}

    spo2, _ = observations("pulse_oximetry.json")
    one_code = copy.deepcopy(spo2)
    one_code["code"]["coding"] = one_code["code"]["coding"][:1]
    assert _paths(one_code) == {"Observation.code.coding"}

    panel_value = copy.deepcopy(bp)
    panel_value["valueQuantity"] = hr["valueQuantity"]
    assert "Observation.valueQuantity" in _paths(panel_value)

    no_diastolic = copy.deepcopy(bp)
    no_diastolic["component"] = no_diastolic["component"][:1]
    assert _paths(no_diastolic) == {"Observation.component"}


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda o: o.update(effectiveDateTime="yesterday"), "Observation.effectiveDateTime"),
        (lambda o: o["valueQuantity"].update(value="seventy-two"), "Observation.valueQuantity.value"),
        (lambda o: o.update(colour="red"), "Observation.colour"),
        (lambda o: o.pop("status"), "Observation.status"),
    ],
)
def test_structural_errors_come_with_element_paths(mutate: Any, path: str) -> None:
    _, hr = observations("blood_pressure_with_pulse.json")
    mutate(hr)
    assert path in _paths(hr)
