"""The patient registry: patients linked to their EHR ids, providers and RPM programs (SPEC §4)."""
