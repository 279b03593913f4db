"""The vital signs the sandbox accepts and their units (FHIR R4 Vital Signs profile §vitalsigns;
SPEC §5 reading table). LOINC codes with the UCUM units each may carry."""

from __future__ import annotations

from enum import StrEnum

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"


class Loinc(StrEnum):
    bp_panel = "85354-9"  # Blood pressure panel with all children optional; values in components
    systolic = "8480-6"  # Systolic blood pressure
    diastolic = "8462-4"  # Diastolic blood pressure
    heart_rate = "8867-4"  # Heart rate
    spo2 = "59408-5"  # Oxygen saturation in arterial blood by pulse oximetry
    spo2_arterial = "2708-6"  # Oxygen saturation in arterial blood (the profile's base code)
    body_weight = "29463-7"  # Body weight
    glucose = "2339-0"  # Glucose [Mass/volume] in blood
    glucose_meter = "41653-7"  # Glucose [Mass/volume] in capillary blood by glucometer
    body_temperature = "8310-5"  # Body temperature
    respiratory_rate = "9279-1"  # Respiratory rate
    body_height = "8302-2"  # Body height
    bmi = "39156-5"  # Body mass index


# UCUM codes allowed per LOINC code (the vital-signs profile binds these units).
UNITS: dict[Loinc, frozenset[str]] = {
    Loinc.systolic: frozenset({"mm[Hg]"}),
    Loinc.diastolic: frozenset({"mm[Hg]"}),
    Loinc.heart_rate: frozenset({"/min"}),
    Loinc.spo2: frozenset({"%"}),
    Loinc.spo2_arterial: frozenset({"%"}),
    Loinc.body_weight: frozenset({"kg", "[lb_av]", "g"}),
    Loinc.glucose: frozenset({"mg/dL", "mmol/L"}),
    Loinc.glucose_meter: frozenset({"mg/dL", "mmol/L"}),
    Loinc.body_temperature: frozenset({"Cel", "[degF]"}),
    Loinc.respiratory_rate: frozenset({"/min"}),
    Loinc.body_height: frozenset({"cm", "[in_i]"}),
    Loinc.bmi: frozenset({"kg/m2"}),
}

# A blood pressure panel carries its values as these components, each in mm[Hg].
BP_COMPONENTS = (Loinc.systolic, Loinc.diastolic)
ACCEPTED = frozenset(code.value for code in Loinc)
STATUSES = frozenset(
    {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}
)
