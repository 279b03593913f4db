"""Missed-reading check (SPEC §6): a periodic sweep, not a reaction to a reading.

A patient is watched once a device is assigned to them. The clock for "no reading for N days"
starts at their last measurement, or at the device assignment if that is later (a patient who
was just given a cuff is not overdue). When readings resume, the check resolves its own alert.
``now`` is a parameter so the check is testable and replayable (``vitalbridge triage check-missed --now``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vitalbridge.devices.models import Device, Reading
from vitalbridge.patients.models import Patient, PatientStatus
from vitalbridge.triage import alerts
from vitalbridge.triage.codes import AlertStatus
from vitalbridge.triage.evaluate import TRIAGE_ACTOR, rules_for_patients
from vitalbridge.triage.models import Alert


@dataclass(frozen=True)
class MissedSummary:
    checked: int
    opened: int
    resolved: int


def check_missed_readings(session: Session, *, now: datetime, organization_id: str | None = None) -> MissedSummary:
    watched = select(Patient.id, Patient.organization_id, func.max(Device.assigned_at)).join(
        Device, Device.patient_id == Patient.id
    )
    watched = watched.where(Patient.status == PatientStatus.active)
    if organization_id is not None:
        watched = watched.where(Patient.organization_id == organization_id)
    rows = session.execute(watched.group_by(Patient.id, Patient.organization_id)).all()
    if not rows:
        return MissedSummary(0, 0, 0)
    ids = [r[0] for r in rows]
    last_measured = dict(
        session.execute(
            select(Reading.patient_id, func.max(Reading.measured_at))
            .where(Reading.patient_id.in_(ids))
            .group_by(Reading.patient_id)
        ).all()
    )
    rules = rules_for_patients(session, ids)
    open_missed: dict[str, Alert] = {}
    codes = {r.missed.code for r in rules.values() if r.missed is not None}
    if codes:
        open_missed = {
            a.patient_id: a
            # Locked now, before any audit entry takes the audit chain (same order as everywhere).
            for a in session.scalars(
                select(Alert)
                .where(Alert.patient_id.in_(ids), Alert.rule_code.in_(codes), Alert.status != AlertStatus.resolved)
                .order_by(Alert.id)
                .with_for_update()
            )
        }
    opened = resolved = 0
    for pid, org_id, assigned_at in rows:
        rule = rules[pid].missed
        if rule is None or not rule.enabled:
            continue
        candidates = [t for t in (last_measured.get(pid), assigned_at) if t is not None]
        if not candidates:
            continue
        since = max(candidates)
        overdue = now - since >= timedelta(days=rule.days)
        existing = open_missed.get(pid)
        if overdue and existing is None:
            alerts.open_or_update(
                session,
                organization_id=org_id,
                patient_id=pid,
                rule_code=rule.code,
                severity=rule.severity,
                at=now,
                actor=TRIAGE_ACTOR,
                detail={"days": rule.days, "last_reading_at": since.isoformat()},
            )
            opened += 1
        elif not overdue and existing is not None:
            alerts.resolve(
                session,
                organization_id=org_id,
                alert_id=existing.id,
                actor=TRIAGE_ACTOR,
                at=now,
                note="readings resumed",
            )
            resolved += 1
    return MissedSummary(len(rows), opened, resolved)
