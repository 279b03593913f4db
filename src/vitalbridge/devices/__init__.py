"""Device readings (SPEC §5): gateway adapters, device registry, units, plausibility, ingest."""
