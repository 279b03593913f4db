"""Who is told about an alert (SPEC §6): assignee, program on-call list, escalation targets.

- A new alert goes to its assignee (triage assigns the user behind the patient's provider);
  an alert without one goes to the program's on-call list.
- An escalation (critical, unacknowledged too long) goes to the on-call list, else — when the
  program has none — to the organization's admins, so it always reaches someone.
- A resolution goes to everyone who was told about the alert, so no phone keeps a stale alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.errors import FieldError, NotFound, ValidationFailed
from vitalbridge.notify.models import ProgramAlerting, PushOutbox
from vitalbridge.patients.models import Patient, Program
from vitalbridge.settings import Settings
from vitalbridge.tenancy.models import Role, User
from vitalbridge.triage.models import Alert


@dataclass(frozen=True)
class AlertingPolicy:
    program_id: str | None
    on_call_user_ids: list[str]
    escalation_minutes: int


def _existing_users(session: Session, organization_id: str, user_ids: list[str]) -> list[str]:
    """Keep order, drop users deleted since (or of another organization), drop repeats."""
    if not user_ids:
        return []
    found = set(session.scalars(select(User.id).where(User.organization_id == organization_id, User.id.in_(user_ids))))
    kept: list[str] = []
    for u in user_ids:
        if u in found and u not in kept:
            kept.append(u)
    return kept


def get_program(session: Session, organization_id: str, ref: str) -> Program:
    program = session.scalar(
        select(Program).where(Program.organization_id == organization_id, (Program.id == ref) | (Program.code == ref))
    )
    if program is None:
        raise NotFound("no such program in this organization")
    return program


def program_alerting(session: Session, organization_id: str, program_id: str) -> ProgramAlerting | None:
    return session.scalar(
        select(ProgramAlerting).where(
            ProgramAlerting.program_id == program_id, ProgramAlerting.organization_id == organization_id
        )
    )


def put_program_alerting(
    session: Session,
    organization_id: str,
    program: Program,
    *,
    on_call_user_ids: list[str],
    escalation_minutes: int | None,
    actor: str,
    now: datetime,
) -> ProgramAlerting:
    kept = _existing_users(session, organization_id, on_call_user_ids)
    unknown = [i for i, u in enumerate(on_call_user_ids) if u not in kept]
    if unknown:
        raise ValidationFailed(
            "on-call users must be users of this organization",
            [FieldError(("body", "on_call_user_ids", i), "no such user in this organization") for i in unknown],
        )
    row = program_alerting(session, organization_id, program.id)
    if row is None:
        row = ProgramAlerting(program_id=program.id, organization_id=organization_id)
        session.add(row)
    row.on_call_user_ids = kept
    row.escalation_minutes = escalation_minutes
    row.updated_at = now
    row.updated_by = actor
    session.flush()
    return row


def policy_for(session: Session, alert: Alert, settings: Settings) -> AlertingPolicy:
    program_id = session.scalar(select(Patient.program_id).where(Patient.id == alert.patient_id))
    row = program_alerting(session, alert.organization_id, program_id) if program_id else None
    on_call = _existing_users(session, alert.organization_id, list(row.on_call_user_ids)) if row else []
    minutes = row.escalation_minutes if row and row.escalation_minutes else settings.escalation_minutes
    return AlertingPolicy(program_id, on_call, minutes)


def new_alert_recipients(session: Session, alert: Alert, settings: Settings) -> list[str]:
    if alert.assignee_user_id:
        return _existing_users(session, alert.organization_id, [alert.assignee_user_id])
    return policy_for(session, alert, settings).on_call_user_ids


def escalation_targets(session: Session, alert: Alert, settings: Settings) -> list[str]:
    on_call = policy_for(session, alert, settings).on_call_user_ids
    targets = [u for u in on_call if u != alert.assignee_user_id]
    if targets:
        return targets
    admins = list(
        session.scalars(
            select(User.id)
            .where(User.organization_id == alert.organization_id, User.role == Role.admin)
            .order_by(User.created_at, User.id)
        )
    )
    return [u for u in admins if u != alert.assignee_user_id] or admins


def already_told(session: Session, alert_id: str) -> list[str]:
    """Users with a push queued or sent for this alert, in first-told order."""
    rows = session.execute(
        select(PushOutbox.user_id, PushOutbox.created_at)
        .where(PushOutbox.alert_id == alert_id)
        .order_by(PushOutbox.created_at, PushOutbox.id)
    ).all()
    seen: list[str] = []
    for user_id, _at in rows:
        if user_id not in seen:
            seen.append(user_id)
    return seen
