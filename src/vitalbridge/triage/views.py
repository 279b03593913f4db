"""``/api/v1/alerts/``, ``/api/v1/patients/{id}/thresholds``, ``/api/v1/programs/{id}/rules`` (SPEC §6).

Alert changes go through ``triage.alerts`` only. Everything is scoped to the caller's
organization; another tenant's alert or patient answers 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from sqlalchemy import case, select

from vitalbridge.api.actors import actor_of
from vitalbridge.api.deps import SessionDep, require_role
from vitalbridge.api.types import MAX_OFFSET
from vitalbridge.db.base import utcnow
from vitalbridge.tenancy.models import Role
from vitalbridge.tenancy.service import Principal
from vitalbridge.triage import alerts, service
from vitalbridge.triage.codes import AlertStatus, Severity
from vitalbridge.triage.models import Alert, AlertEvent
from vitalbridge.triage.schemas import (
    AlertActionIn,
    AlertAssignIn,
    AlertDetailOut,
    AlertEventOut,
    AlertOut,
    ProgramRulesOut,
    ThresholdsOut,
)

alerts_router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
rules_router = APIRouter(prefix="/api/v1", tags=["triage rules"])

ClinicianDep = Annotated[Principal, Depends(require_role(Role.clinician))]
AdminDep = Annotated[Principal, Depends(require_role(Role.admin))]
RulesDocument = Annotated[dict[str, Any], Body(description="rules layer: thresholds, trends, missed (docs/triage.md)")]


@alerts_router.get("/", response_model=list[AlertOut])
def list_alerts(
    session: SessionDep,
    principal: ClinicianDep,
    status: Annotated[list[AlertStatus] | None, Query(description="default: open and acknowledged")] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    patient: str | None = None,
    rule: str | None = None,
    assignee: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[AlertOut]:
    """Most severe first, then oldest first: the triage queue."""
    q = select(Alert).where(Alert.organization_id == principal.organization_id)
    q = q.where(Alert.status.in_(status or [AlertStatus.open, AlertStatus.acknowledged]))
    if severity:
        q = q.where(Alert.severity.in_(severity))
    if patient:
        q = q.where(Alert.patient_id == patient)
    if rule:
        q = q.where(Alert.rule_code == rule)
    if assignee:
        q = q.where(Alert.assignee_user_id == assignee)
    urgency = case({s.value: s.rank for s in Severity}, value=Alert.severity, else_=-1)
    rows = session.scalars(q.order_by(urgency.desc(), Alert.opened_at, Alert.id).limit(limit).offset(offset))
    return [AlertOut.of(a) for a in rows]


def _detail(session: SessionDep, alert: Alert) -> AlertDetailOut:
    events = session.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert.id).order_by(AlertEvent.seq))
    return AlertDetailOut(**AlertOut.of(alert).model_dump(), history=[AlertEventOut.of(e) for e in events])


@alerts_router.get("/{alert_id}", response_model=AlertDetailOut)
def get_alert(alert_id: str, session: SessionDep, principal: ClinicianDep) -> AlertDetailOut:
    """The alert with its full history (every change, who made it and when)."""
    return _detail(session, alerts.get_alert(session, principal.organization_id, alert_id))


@alerts_router.post("/{alert_id}/acknowledge", response_model=AlertDetailOut)
def acknowledge(alert_id: str, body: AlertActionIn, session: SessionDep, principal: ClinicianDep) -> AlertDetailOut:
    change = alerts.acknowledge(
        session,
        organization_id=principal.organization_id,
        alert_id=alert_id,
        actor=actor_of(principal),
        at=utcnow(),
        note=body.note,
    )
    session.flush()
    return _detail(session, change.alert)


@alerts_router.post("/{alert_id}/resolve", response_model=AlertDetailOut)
def resolve(alert_id: str, body: AlertActionIn, session: SessionDep, principal: ClinicianDep) -> AlertDetailOut:
    change = alerts.resolve(
        session,
        organization_id=principal.organization_id,
        alert_id=alert_id,
        actor=actor_of(principal),
        at=utcnow(),
        note=body.note,
    )
    session.flush()
    return _detail(session, change.alert)


@alerts_router.post("/{alert_id}/assign", response_model=AlertDetailOut)
def assign(alert_id: str, body: AlertAssignIn, session: SessionDep, principal: ClinicianDep) -> AlertDetailOut:
    change = alerts.assign(
        session,
        organization_id=principal.organization_id,
        alert_id=alert_id,
        assignee_user_id=body.user_id,
        actor=actor_of(principal),
        at=utcnow(),
    )
    session.flush()
    return _detail(session, change.alert)


@rules_router.get("/patients/{patient_id}/thresholds", response_model=ThresholdsOut)
def get_thresholds(patient_id: str, session: SessionDep, principal: ClinicianDep) -> ThresholdsOut:
    return service.thresholds(session, principal.organization_id, patient_id)


@rules_router.put("/patients/{patient_id}/thresholds", response_model=ThresholdsOut)
def put_thresholds(patient_id: str, body: RulesDocument, session: SessionDep, principal: ClinicianDep) -> ThresholdsOut:
    """Replace the patient's override layer (``{}`` removes all overrides)."""
    return service.put_thresholds(
        session, principal.organization_id, patient_id, body, actor=actor_of(principal), now=utcnow()
    )


@rules_router.get("/programs/{program_id}/rules", response_model=ProgramRulesOut)
def get_program_rules(program_id: str, session: SessionDep, principal: ClinicianDep) -> ProgramRulesOut:
    return service.program_rules(session, principal.organization_id, program_id)


@rules_router.put("/programs/{program_id}/rules", response_model=ProgramRulesOut)
def put_program_rules(
    program_id: str, body: RulesDocument, session: SessionDep, principal: AdminDep
) -> ProgramRulesOut:
    """Replace the program's rule layer (the defaults of its patients)."""
    return service.put_program_rules(session, principal.organization_id, program_id, body, actor=actor_of(principal))
