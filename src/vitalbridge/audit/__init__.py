"""Append-only, hash-chained audit trail (SPEC §9). Every boundary crossing calls ``record``."""

from vitalbridge.audit.service import Actor, Outcome, record

__all__ = ["Actor", "Outcome", "record"]
