"""Logs, request context and (later) metrics: what the hub says about itself, never PHI (SPEC §9)."""
