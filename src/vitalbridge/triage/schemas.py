"""API shapes for alerts and rules (SPEC §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vitalbridge.triage.codes import AlertEventKind, AlertStatus, Severity
from vitalbridge.triage.models import Alert, AlertEvent


class AlertOut(BaseModel):
    id: str
    patient_id: str
    rule_code: str
    severity: Severity
    status: AlertStatus
    assignee_user_id: str | None
    occurrences: int
    first_reading_id: str | None
    last_reading_id: str | None
    reading_ids: list[str]
    detail: dict[str, Any]
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None

    @classmethod
    def of(cls, a: Alert) -> AlertOut:
        return cls(
            id=a.id,
            patient_id=a.patient_id,
            rule_code=a.rule_code,
            severity=a.severity,
            status=a.status,
            assignee_user_id=a.assignee_user_id,
            occurrences=a.occurrences,
            first_reading_id=a.first_reading_id,
            last_reading_id=a.last_reading_id,
            reading_ids=list(a.reading_ids),
            detail=dict(a.detail),
            opened_at=a.opened_at,
            updated_at=a.updated_at,
            acknowledged_at=a.acknowledged_at,
            acknowledged_by=a.acknowledged_by,
            resolved_at=a.resolved_at,
            resolved_by=a.resolved_by,
        )


class AlertEventOut(BaseModel):
    seq: int
    kind: AlertEventKind
    severity: Severity
    from_status: AlertStatus | None
    to_status: AlertStatus
    actor: str
    reading_id: str | None
    assignee_user_id: str | None
    note: str | None
    occurred_at: datetime

    @classmethod
    def of(cls, e: AlertEvent) -> AlertEventOut:
        return cls(
            seq=e.seq,
            kind=e.kind,
            severity=e.severity,
            from_status=e.from_status,
            to_status=e.to_status,
            actor=e.actor,
            reading_id=e.reading_id,
            assignee_user_id=e.assignee_user_id,
            note=e.note,
            occurred_at=e.occurred_at,
        )


class AlertDetailOut(AlertOut):
    history: list[AlertEventOut]


class AlertActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=1000)


class AlertAssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(description="hub user id; null clears the assignee")


class ThresholdsOut(BaseModel):
    patient_id: str
    program_id: str | None
    overrides: dict[str, Any] = Field(description="this patient's layer, as stored")
    program_rules: dict[str, Any] = Field(description="the program's layer, as stored")
    effective: dict[str, Any] = Field(description="defaults ← program ← overrides, as triage applies them")


class ProgramRulesOut(BaseModel):
    program_id: str
    rules: dict[str, Any]
    effective: dict[str, Any]
