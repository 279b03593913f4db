"""EHR delivery (SPEC §7): the outbox and, built on it, the delivery worker."""
