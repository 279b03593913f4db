"""Run triage rules on stored readings (SPEC §6): thresholds and trends.

Called inline by ingest (``VB_TRIAGE_INLINE``, default on) inside a SAVEPOINT, and by the
background sweeper for readings whose ``triaged_at`` is still empty. A failure in triage never
costs a reading: the savepoint rolls back only triage's own writes, the reading commits with
``triaged_at`` empty and the sweeper tries again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.audit import Actor
from vitalbridge.devices.models import Measurement, Reading
from vitalbridge.devices.readings import MeasurementKind
from vitalbridge.patients.models import Patient, Program
from vitalbridge.triage import alerts
from vitalbridge.triage.codes import AlertStatus, Metric, Severity
from vitalbridge.triage.models import Alert, PatientThresholds
from vitalbridge.triage.rules import RuleSet, TrendRule, effective_rules, trend_breach

log = structlog.get_logger(__name__)
TRIAGE_ACTOR = Actor.service("triage")


def metric_values(m: Measurement) -> list[tuple[Metric, float]]:
    if m.kind is MeasurementKind.blood_pressure:
        out = []
        if m.systolic is not None:
            out.append((Metric.systolic, m.systolic))
        if m.diastolic is not None:
            out.append((Metric.diastolic, m.diastolic))
        return out
    metric = _METRIC_OF.get(m.kind)
    return [(metric, m.value)] if metric is not None and m.value is not None else []


_METRIC_OF: dict[MeasurementKind, Metric] = {
    MeasurementKind.heart_rate: Metric.heart_rate,
    MeasurementKind.oxygen_saturation: Metric.spo2,
    MeasurementKind.body_weight: Metric.body_weight,
    MeasurementKind.blood_glucose: Metric.blood_glucose,
}
_KIND_OF: dict[Metric, MeasurementKind] = {v: k for k, v in _METRIC_OF.items()}


def rules_for_patients(session: Session, patient_ids: Iterable[str]) -> dict[str, RuleSet]:
    """Effective rules per patient: defaults ← program ← patient overrides (two queries)."""
    ids = set(patient_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Patient.id, Program.rules)
        .outerjoin(Program, Program.id == Patient.program_id)
        .where(Patient.id.in_(ids))
    ).all()
    overrides: dict[str, dict[str, Any]] = dict(
        session.execute(
            select(PatientThresholds.patient_id, PatientThresholds.rules).where(PatientThresholds.patient_id.in_(ids))
        ).all()
    )
    cache: dict[tuple[str, str], RuleSet] = {}
    out: dict[str, RuleSet] = {}
    for pid, program_rules in rows:
        layers: list[dict[str, Any]] = [program_rules or {}, overrides.get(pid) or {}]
        key = (repr(layers[0]), repr(layers[1]))
        if key not in cache:
            cache[key] = effective_rules(*layers)
        out[pid] = cache[key]
    return out


@dataclass(frozen=True)
class Breach:
    organization_id: str
    patient_id: str
    reading_id: str
    rule_code: str
    severity: Severity
    detail: dict[str, Any]


def find_breaches(
    session: Session, readings: Sequence[Reading], measurements: dict[str, list[Measurement]]
) -> list[Breach]:
    """Every rule these readings break, in reading order. Reads only; changes nothing."""
    with_patient = [r for r in readings if r.patient_id]
    rules = rules_for_patients(session, {r.patient_id for r in with_patient if r.patient_id})
    out: list[Breach] = []
    for reading in with_patient:
        pid = reading.patient_id
        assert pid is not None
        ruleset = rules.get(pid)
        if ruleset is None:
            continue
        for m in measurements.get(reading.id, []):
            at = m.measured_at.astimezone(UTC).isoformat()
            for metric, value in metric_values(m):
                for rule in ruleset.thresholds_for(metric):
                    level = rule.breached(value)
                    if level is None:
                        continue
                    detail = {
                        "metric": metric.value,
                        "value": value,
                        "unit": m.unit.value,
                        "level": level.value,
                        "direction": rule.direction.value,
                        "measured_at": at,
                    }
                    out.append(Breach(reading.organization_id, pid, reading.id, rule.code, level.severity, detail))
                trends = ruleset.trends_for(metric)
                if trends:
                    out.extend(_trends(session, reading, m, metric, value, trends))
    return out


def triage_readings(
    session: Session, readings: Sequence[Reading], measurements: dict[str, list[Measurement]], *, now: datetime
) -> int:
    """Evaluate thresholds and trends and apply them to alerts; returns how many alert changes were made.

    Lock order: the patients' unresolved alerts first, then (through the alert audit entries) the
    audit chain. Clinician actions take the same order (alert row, then audit), so the two never
    deadlock on PostgreSQL.
    """
    breaches = find_breaches(session, readings, measurements)
    if breaches:
        session.execute(
            select(Alert.id)
            .where(Alert.patient_id.in_({b.patient_id for b in breaches}), Alert.status != AlertStatus.resolved)
            .order_by(Alert.id)
            .with_for_update()
        ).all()
    for b in breaches:
        alerts.open_or_update(
            session,
            organization_id=b.organization_id,
            patient_id=b.patient_id,
            rule_code=b.rule_code,
            severity=b.severity,
            at=now,
            actor=TRIAGE_ACTOR,
            reading_id=b.reading_id,
            detail=b.detail,
        )
    for reading in readings:
        if reading.patient_id:
            reading.triaged_at = now
    return len(breaches)


def _trends(
    session: Session, reading: Reading, m: Measurement, metric: Metric, value: float, rules: list[TrendRule]
) -> list[Breach]:
    kind = _KIND_OF.get(metric)
    if kind is None or reading.patient_id is None:
        return []
    longest = max(r.window for r in rules)
    history = [
        (t, v)
        for t, v in session.execute(
            select(Measurement.measured_at, Measurement.value).where(
                Measurement.patient_id == reading.patient_id,
                Measurement.kind == kind,
                Measurement.measured_at >= m.measured_at - longest,
                Measurement.measured_at < m.measured_at,
                Measurement.id != m.id,
            )
        ).all()
        if v is not None
    ]
    out: list[Breach] = []
    for rule in rules:
        rise = trend_breach(rule, value, m.measured_at, history)
        if rise is None:
            continue
        detail = {
            "metric": metric.value,
            "value": value,
            "unit": m.unit.value,
            "rise": rise,
            "window_hours": rule.window_hours,
            "measured_at": m.measured_at.astimezone(UTC).isoformat(),
        }
        out.append(Breach(reading.organization_id, reading.patient_id, reading.id, rule.code, rule.severity, detail))
    return out


def triage_safely(
    session: Session, readings: Sequence[Reading], measurements: dict[str, list[Measurement]], *, now: datetime
) -> bool:
    """Triage inside a SAVEPOINT; False (and readings left untriaged for the sweeper) on any failure."""
    if not any(r.patient_id for r in readings):
        return True
    try:
        with session.begin_nested():
            triage_readings(session, readings, measurements, now=now)
    except Exception as exc:  # noqa: BLE001 - any triage defect must not cost the reading
        for r in readings:
            r.triaged_at = None
        log.warning("triage.deferred", readings=[r.id for r in readings], error=type(exc).__name__)
        return False
    return True


def triage_pending(session: Session, *, now: datetime, limit: int = 200) -> int:
    """Sweeper: triage readings that have a patient but were not triaged yet. Returns how many."""
    readings = list(
        session.scalars(
            select(Reading)
            .where(Reading.triaged_at.is_(None), Reading.patient_id.is_not(None))
            .order_by(Reading.received_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not readings:
        return 0
    triage_readings(session, readings, measurements_of(session, readings), now=now)
    return len(readings)


def measurements_of(session: Session, readings: Sequence[Reading]) -> dict[str, list[Measurement]]:
    by_reading: dict[str, list[Measurement]] = defaultdict(list)
    for m in session.scalars(select(Measurement).where(Measurement.reading_id.in_([r.id for r in readings]))):
        by_reading[m.reading_id].append(m)
    return by_reading
