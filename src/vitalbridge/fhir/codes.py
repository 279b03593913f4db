"""Code systems used in the Observations the hub writes (SPEC §5 table, SPEC §7).

LOINC and UCUM codes are enums so a typo is a type error, not a chart entry the EHR files
under the wrong flowsheet row. Displays follow the LOINC short names that eCW shows.
"""

from __future__ import annotations

import enum

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
VITAL_SIGNS_PROFILE = "http://hl7.org/fhir/StructureDefinition/vitalsigns"


class Loinc(enum.StrEnum):
    """LOINC codes for RPM measurements (SPEC §5)."""

    # Panel whose only members are the two pressures; vital-signs profile "bp".
    blood_pressure_panel = "85354-9"
    # Component of the panel, mm[Hg].
    systolic = "8480-6"
    # Component of the panel, mm[Hg].
    diastolic = "8462-4"
    # Heart rate: a cuff's or oximeter's pulse is its own Observation, never a BP component.
    heart_rate = "8867-4"
    # Pulse oximetry SpO2; the vital-signs profile requires 2708-6 beside it.
    spo2_pulse_oximetry = "59408-5"
    # Oxygen saturation in arterial blood: the code the vital-signs profile keys on.
    oxygen_saturation = "2708-6"
    # Body weight, measured (home scale).
    body_weight = "29463-7"
    # Glucose mass/volume in blood: the SPEC's default glucose code.
    glucose_blood = "2339-0"
    # Glucose mass/volume in capillary blood by glucometer: more specific, opt-in per hub.
    glucose_glucometer = "41653-7"

    @property
    def display(self) -> str:
        return _LOINC_DISPLAY[self]


_LOINC_DISPLAY: dict[Loinc, str] = {
    Loinc.blood_pressure_panel: "Blood pressure panel with all children optional",
    Loinc.systolic: "Systolic blood pressure",
    Loinc.diastolic: "Diastolic blood pressure",
    Loinc.heart_rate: "Heart rate",
    Loinc.spo2_pulse_oximetry: "Oxygen saturation in Arterial blood by Pulse oximetry",
    Loinc.oxygen_saturation: "Oxygen saturation in Arterial blood",
    Loinc.body_weight: "Body weight",
    Loinc.glucose_blood: "Glucose [Mass/volume] in Blood",
    Loinc.glucose_glucometer: "Glucose [Mass/volume] in Capillary blood by Glucometer",
}


class Ucum(enum.StrEnum):
    """UCUM units the hub normalises to (and the originals it keeps)."""

    # Millimetres of mercury: both BP components.
    mm_hg = "mm[Hg]"
    # Beats per minute: heart rate.
    per_minute = "/min"
    # Percent: SpO2.
    percent = "%"
    # Kilogram: body weight as sent to the EHR.
    kilogram = "kg"
    # Avoirdupois pound: kept as the original unit when a scale reports lb.
    pound = "[lb_av]"
    # Milligrams per decilitre: blood glucose as sent to the EHR.
    mg_per_dl = "mg/dL"
    # Millimoles per litre: kept as the original unit for meters set to mmol/L.
    mmol_per_l = "mmol/L"

    @property
    def display(self) -> str:
        return _UCUM_DISPLAY[self]


_UCUM_DISPLAY: dict[Ucum, str] = {
    Ucum.mm_hg: "mmHg",
    Ucum.per_minute: "beats/minute",
    Ucum.percent: "%",
    Ucum.kilogram: "kg",
    Ucum.pound: "lb",
    Ucum.mg_per_dl: "mg/dL",
    Ucum.mmol_per_l: "mmol/L",
}


class ObservationCategory(enum.StrEnum):
    """observation-category code system (only the member the hub writes)."""

    # Every RPM Observation the hub writes carries this category (SPEC §7).
    vital_signs = "vital-signs"


class ObservationStatus(enum.StrEnum):
    """R4 ObservationStatus value set (required binding); fhir.resources does not enforce it."""

    registered = "registered"  # not yet available
    preliminary = "preliminary"  # early result, may change
    final = "final"  # the only status the hub writes: device readings are complete
    amended = "amended"  # changed after being final
    corrected = "corrected"  # amended to fix an error
    cancelled = "cancelled"  # never completed
    entered_in_error = "entered-in-error"  # withdrawn
    unknown = "unknown"  # status not known
