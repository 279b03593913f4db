"""Rule layers stored per program and per patient (SPEC §6): read, validate, replace."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.errors import NotFound, ValidationFailed
from vitalbridge.patients.models import Patient, Program
from vitalbridge.triage.models import PatientThresholds
from vitalbridge.triage.rules import check_layer, effective_rules
from vitalbridge.triage.schemas import ProgramRulesOut, ThresholdsOut


def _patient(session: Session, organization_id: str, patient_id: str) -> Patient:
    patient = session.scalar(
        select(Patient).where(Patient.id == patient_id, Patient.organization_id == organization_id)
    )
    if patient is None:
        raise NotFound("no such patient in this organization")
    return patient


def _program(session: Session, organization_id: str, program_id: str) -> Program:
    program = session.scalar(
        select(Program).where(
            Program.organization_id == organization_id, (Program.id == program_id) | (Program.code == program_id)
        )
    )
    if program is None:
        raise NotFound("no such program in this organization")
    return program


def thresholds(session: Session, organization_id: str, patient_id: str) -> ThresholdsOut:
    patient = _patient(session, organization_id, patient_id)
    program = session.get(Program, patient.program_id) if patient.program_id else None
    program_rules = (program.rules if program else None) or {}
    row = session.get(PatientThresholds, patient.id)
    overrides = row.rules if row else {}
    return ThresholdsOut(
        patient_id=patient.id,
        program_id=patient.program_id,
        overrides=overrides,
        program_rules=program_rules,
        effective=effective_rules(program_rules, overrides).model_dump(mode="json"),
    )


def put_thresholds(
    session: Session, organization_id: str, patient_id: str, layer: dict[str, Any], *, actor: Actor | str, now: datetime
) -> ThresholdsOut:
    patient = _patient(session, organization_id, patient_id)
    program = session.get(Program, patient.program_id) if patient.program_id else None
    errors = check_layer(layer, (program.rules if program else None) or {})
    if errors:
        raise ValidationFailed("the thresholds document has errors", errors)
    row = session.get(PatientThresholds, patient.id)
    if row is None:
        row = PatientThresholds(patient_id=patient.id, organization_id=organization_id)
        session.add(row)
    row.rules = layer
    row.updated_at = now
    row.updated_by = str(actor)
    record(
        session,
        action="thresholds.updated",
        outcome=Outcome.success,
        actor=actor,
        organization_id=organization_id,
        practice_id=patient.practice_id,
        resource_type="Patient",
        resource_ids=[patient.id],
        detail={"codes": sorted({i.get("code", "") for s in ("thresholds", "trends") for i in layer.get(s) or []})},
    )
    session.flush()
    return thresholds(session, organization_id, patient_id)


def program_rules(session: Session, organization_id: str, program_id: str) -> ProgramRulesOut:
    program = _program(session, organization_id, program_id)
    rules = program.rules or {}
    return ProgramRulesOut(program_id=program.id, rules=rules, effective=effective_rules(rules).model_dump(mode="json"))


def put_program_rules(
    session: Session, organization_id: str, program_id: str, layer: dict[str, Any], *, actor: Actor | str
) -> ProgramRulesOut:
    program = _program(session, organization_id, program_id)
    errors = check_layer(layer)
    if errors:
        raise ValidationFailed("the rules document has errors", errors)
    program.rules = layer
    record(
        session,
        action="program_rules.updated",
        outcome=Outcome.success,
        actor=actor,
        organization_id=organization_id,
        resource_type="Program",
        resource_ids=[program.id],
    )
    session.flush()
    return program_rules(session, organization_id, program.id)
