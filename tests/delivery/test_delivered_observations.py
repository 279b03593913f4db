"""What the EHR ends up holding is valid FHIR R4 with the SPEC §5 LOINC codes and UCUM units.

Mixed readings (BP with pulse, SpO2 with pulse, weight in lb and kg, glucose in mg/dL and
mmol/L) go through the webhook and the delivery worker into the sandbox EHR; every stored
Observation is then parsed with fhir.resources' R4B models (identical to R4 for Observation) and
checked against the vital-signs coding the spec names.
"""

from __future__ import annotations

from fhir.resources.R4B.observation import Observation

from tests.delivery.support import hub_http, make_env, post_readings, sandbox
from vitalbridge.delivery.deliver import deliver
from vitalbridge.runtime import Hub

LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"
# SPEC §5: code → UCUM unit of valueQuantity (the BP panel carries its units on components).
UNITS = {"8867-4": "/min", "59408-5": "%", "29463-7": "kg", "2339-0": "mg/dL", "41653-7": "mg/dL"}
BP_COMPONENTS = {"8480-6", "8462-4"}


def test_delivered_observations_validate_as_r4_with_spec_codes(hub: Hub) -> None:
    with sandbox() as sb:
        env = make_env(hub, sb.url, ehr_patient_id=sb.patient_id())
        with hub_http(hub) as url:
            expected = post_readings(env, url, 8)
        for row in env.rows():
            assert deliver(hub, row.id).status == "delivered"
        stored = sb.observations()
    assert len(stored) == expected == 12  # 8 readings: BP and SpO2 also give a pulse Observation
    seen: set[str] = set()
    for resource in stored:
        obs = Observation.model_validate(resource)
        assert obs.status == "final"
        categories = {c.code for cat in obs.category or [] for c in cat.coding or []}
        assert "vital-signs" in categories
        codes = {c.code for c in obs.code.coding or [] if c.system == LOINC}
        assert codes, resource["code"]
        assert obs.subject is not None
        assert obs.subject.reference == f"Patient/{env.ehr_patient_id}"
        assert obs.effectiveDateTime is not None
        assert obs.identifier
        assert obs.identifier[0].value
        if "85354-9" in codes:
            assert obs.valueQuantity is None
            components = {c.code.coding[0].code: c.valueQuantity for c in obs.component or []}
            assert set(components) == BP_COMPONENTS  # systolic and diastolic only; pulse is its own
            for quantity in components.values():
                assert quantity is not None
                assert (quantity.system, quantity.code) == (UCUM, "mm[Hg]")
            seen.add("85354-9")
            continue
        if "59408-5" in codes:
            assert "2708-6" in codes  # SPEC §5: SpO2 carries the oxygen-saturation code too
        code = next(c for c in codes if c in UNITS)
        assert obs.valueQuantity is not None
        assert (obs.valueQuantity.system, obs.valueQuantity.code) == (UCUM, UNITS[code])
        seen.add(code)
    assert {"85354-9", "8867-4", "59408-5", "29463-7"} <= seen
    assert seen & {"2339-0", "41653-7"}
