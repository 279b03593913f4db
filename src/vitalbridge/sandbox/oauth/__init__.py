"""The sandbox's OAuth 2.0 / SMART on FHIR authorization server (SPEC §3, §11)."""
