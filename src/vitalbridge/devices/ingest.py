"""Store readings (SPEC §5, §7; DESIGN principle 1): the hot path.

``store_readings`` writes, in the caller's transaction, each new reading, its measurements, one
outbox row per measurement (with its validated Observation) and one audit entry; triage runs
in a SAVEPOINT after them when inline. The caller commits before answering 2xx, so a reading
acknowledged to the gateway is durable with everything needed to deliver it.

Queries for one new reading: duplicate check, device lookup, device-attribution (only for late
readings), patient+practice, audit tail, the inserts, and triage's rule lookup.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.db.base import new_id
from vitalbridge.delivery.models import OutboxEntry, OutboxStatus
from vitalbridge.delivery.outbox import UNKNOWN_TARGET, Target, new_entry, target_of
from vitalbridge.devices import registry, sameness
from vitalbridge.devices.models import Gateway, Measurement, Reading
from vitalbridge.devices.quarantine import READING_ID_CONFLICT
from vitalbridge.devices.readings import NormalizedReading, ReadingSource
from vitalbridge.errors import FieldError, ValidationFailed
from vitalbridge.fhir.codes import Loinc
from vitalbridge.fhir.observation import ObservationInput, build_observation
from vitalbridge.fhir.validation import validate_observation
from vitalbridge.settings import Settings
from vitalbridge.triage.evaluate import triage_safely


class InvalidObservation(ValidationFailed):
    """An Observation built from an accepted reading failed validation: a hub defect, never queued."""

    error_code = "invalid_observation"


class ReadingConflict(Exception):
    """A gateway reading id already used for a reading with different content (devices.sameness)."""

    def __init__(self, field_errors: list[FieldError], gateway_reading_id: str) -> None:
        super().__init__("reading id conflict")
        self.field_errors = field_errors
        self.gateway_reading_id = gateway_reading_id


def _conflict_error(reading: NormalizedReading) -> FieldError:
    return FieldError(
        (*reading.source.loc, "reading_id"),
        "this reading id was already received with different content; the first reading is kept",
        READING_ID_CONFLICT,
    )


@dataclass(frozen=True)
class Stored:
    gateway_reading_id: str
    reading_id: str
    duplicate: bool
    measurement_ids: tuple[str, ...] = ()
    blocked: bool = False


@dataclass
class StoreResult:
    items: list[Stored] = field(default_factory=list)
    triaged: bool = True

    @property
    def new(self) -> list[Stored]:
        return [s for s in self.items if not s.duplicate]


def store_readings(
    session: Session,
    gateway: Gateway,
    readings: list[NormalizedReading],
    *,
    settings: Settings,
    source: ReadingSource,
    now: datetime,
    audit_action: str,
    correlation_id: str | None = None,
    status_code: int | None = None,
    latency_ms: float | None = None,
    actor: Actor | str | None = None,
) -> StoreResult:
    org_id = gateway.organization_id
    ids = [r.source.gateway_reading_id for r in readings]
    existing: dict[str, str] = dict(
        session.execute(
            select(Reading.gateway_reading_id, Reading.id).where(
                Reading.gateway_id == gateway.id, Reading.gateway_reading_id.in_(ids)
            )
        ).all()
    )
    result = StoreResult()
    fresh: list[NormalizedReading] = []
    stored_prints = sameness.of_stored(session, list(existing.values()))
    fresh_prints: dict[str, sameness.Fingerprint] = {}
    conflicts: list[FieldError] = []
    conflicting: list[str] = []
    for r in readings:
        gid = r.source.gateway_reading_id
        mine = sameness.of_incoming(r)
        if gid in existing:
            if stored_prints.get(existing[gid]) != mine:
                conflicts.append(_conflict_error(r))
                conflicting.append(gid)
            result.items.append(Stored(gid, existing[gid], duplicate=True))
        elif gid in fresh_prints:
            if fresh_prints[gid] != mine:
                conflicts.append(_conflict_error(r))
                conflicting.append(gid)
        else:
            fresh.append(r)
            fresh_prints[gid] = mine
    if conflicts:
        # Nothing of this batch is stored: the caller quarantines it whole with the reason.
        raise ReadingConflict(conflicts, conflicting[0])

    new_readings: list[Reading] = []
    new_measurements: dict[str, list[Measurement]] = defaultdict(list)
    practices: set[str] = set()
    if fresh:
        devices = registry.devices_for(session, org_id, [r.source.device for r in fresh])
        owner = {
            r.source.gateway_reading_id: registry.attributed_patient_id(
                session, devices[r.source.device.serial], r.source.measured_at
            )
            for r in fresh
        }
        patients = registry.patients_with_practices(session, {p for p in owner.values() if p})
        entries: list[OutboxEntry] = []
        glucose = Loinc(settings.glucose_loinc)
        for r in fresh:
            src = r.source
            pid = owner[src.gateway_reading_id]
            hit = patients.get(pid) if pid else None
            target: Target = target_of(*hit) if hit else UNKNOWN_TARGET
            device = devices[src.device.serial]
            reading = Reading(
                id=new_id(),
                organization_id=org_id,
                gateway_id=gateway.id,
                gateway_reading_id=src.gateway_reading_id,
                source=source,
                origin=src.origin,
                device_id=device.id,
                patient_id=target.patient_id,
                reading_type=src.reading_type,
                measured_at=src.measured_at,
                measured_offset_min=src.offset_minutes,
                received_at=now,
                unassigned=target.patient_id is None,
                irregular_heartbeat=src.irregular_heartbeat,
                meal_context=src.meal_context,
            )
            new_readings.append(reading)
            mids: list[str] = []
            blocked = False
            for m in r.measurements:
                meas = Measurement(
                    id=new_id(),
                    reading_id=reading.id,
                    organization_id=org_id,
                    patient_id=target.patient_id,
                    measured_at=src.measured_at,
                    kind=m.kind,
                    unit=m.unit,
                    value=m.value,
                    systolic=m.systolic,
                    diastolic=m.diastolic,
                    original_value=m.original_value,
                    original_unit=m.original_unit,
                )
                resource = build_observation(
                    ObservationInput(
                        measurement_id=meas.id,
                        kind=m.kind,
                        unit=m.unit,
                        effective=src.measured_at,
                        device=src.device,
                        identifier_base=settings.identifier_base,
                        value=m.value,
                        systolic=m.systolic,
                        diastolic=m.diastolic,
                        irregular_heartbeat=src.irregular_heartbeat,
                        meal_context=src.meal_context,
                        glucose_code=glucose,
                    )
                )
                # Checked without a subject here; ``route`` re-checks with it whenever one is set.
                problems = validate_observation(resource, require_subject=False)
                entry, route_problems = new_entry(
                    organization_id=org_id,
                    reading_id=reading.id,
                    measurement_id=meas.id,
                    resource=resource,
                    target=target,
                    now=now,
                )
                if problems or route_problems:
                    raise InvalidObservation(
                        "the Observation built from this reading failed FHIR validation",
                        problems or [FieldError(("Observation",), p, "fhir.profile") for p in route_problems],
                    )
                entries.append(entry)
                new_measurements[reading.id].append(meas)
                mids.append(meas.id)
                blocked = blocked or entry.status is OutboxStatus.blocked
            if target.practice_id:
                practices.add(target.practice_id)
            result.items.append(Stored(src.gateway_reading_id, reading.id, False, tuple(mids), blocked))
        # Parents first: the unit of work orders inserts only along relationship()s, which these
        # tables do not declare. Each stage is one multi-row INSERT.
        session.add_all(new_readings)
        session.flush()
        session.add_all([m for ms in new_measurements.values() for m in ms])
        session.flush()
        session.add_all(entries)
        session.flush()

    # Triage before the audit entry: alert rows are locked before the audit chain, the same order
    # clinician actions use (see triage.evaluate.triage_readings).
    if new_readings and settings.triage_inline:
        result.triaged = triage_safely(session, new_readings, new_measurements, now=now)
    record(
        session,
        action=audit_action,
        outcome=Outcome.success,
        actor=actor or Actor("gateway", gateway.id),
        organization_id=org_id,
        practice_id=next(iter(practices)) if len(practices) == 1 else None,
        resource_type="Reading",
        resource_ids=[s.reading_id for s in result.items],
        # A webhook answers 202 for news and 200 for a re-delivery; sync passes the gateway's status.
        status_code=status_code if status_code is not None else (202 if result.new else 200),
        latency_ms=latency_ms,
        correlation_id=correlation_id,
        detail={
            "gateway_kind": gateway.kind.value,
            "source": source.value,
            "new": len(result.new),
            "duplicates": len(result.items) - len(result.new),
            "blocked": sum(1 for s in result.new if s.blocked),
        },
    )
    return result
