"""FHIR R4: code systems, reading → Observation transform, offline validation (SPEC §7)."""
