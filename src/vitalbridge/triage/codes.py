"""Code lists of triage (SPEC §6): severities, alert statuses, event kinds, rule metrics."""

from __future__ import annotations

import enum


class Severity(enum.StrEnum):
    """How soon a clinician must look. Ordered: ``rank`` grows with urgency."""

    low = "low"  # review at the next routine check
    medium = "medium"  # review today
    high = "high"  # review within hours
    critical = "critical"  # act now

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.low: 0, Severity.medium: 1, Severity.high: 2, Severity.critical: 3}


class AlertStatus(enum.StrEnum):
    open = "open"  # raised, nobody has looked yet
    acknowledged = "acknowledged"  # a clinician has it in hand
    resolved = "resolved"  # closed; a new breach opens a new alert


class AlertEventKind(enum.StrEnum):
    """One row in ``alert_events`` per change: the alert's history and the feed push listens to."""

    opened = "opened"  # a new alert
    updated = "updated"  # another breach of the same rule folded into an unresolved alert
    escalated = "escalated"  # a later breach raised the severity, or nobody acknowledged a critical alert in time
    acknowledged = "acknowledged"  # open → acknowledged
    resolved = "resolved"  # open/acknowledged → resolved
    assigned = "assigned"  # assignee changed


class Metric(enum.StrEnum):
    """What a rule looks at: one value of a measurement."""

    systolic = "systolic"  # mm[Hg]
    diastolic = "diastolic"  # mm[Hg]
    heart_rate = "heart_rate"  # /min
    spo2 = "spo2"  # %
    body_weight = "body_weight"  # kg
    blood_glucose = "blood_glucose"  # mg/dL


class Direction(enum.StrEnum):
    above = "above"  # breach when value ≥ level (> if not inclusive)
    below = "below"  # breach when value ≤ level (< if not inclusive)


MISSED_READINGS = "missed_readings"
