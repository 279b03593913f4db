"""vitalbridge: remote patient monitoring integration hub (device readings → FHIR R4 → EHR)."""

from __future__ import annotations

__version__ = "0.1.0"
