"""The sandbox's FHIR R4 API, per practice under ``/fhir/r4/{practice}`` (SPEC §11)."""
