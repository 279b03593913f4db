"""Triage (SPEC §6): rules per program and patient, alerts and their event feed."""
