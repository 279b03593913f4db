"""Is a re-delivered reading the same reading? (SPEC §5: the gateway's reading id is the
idempotency key.)

A gateway that re-sends a reading id must be re-sending the same reading; then the answer is a
quiet duplicate. The same id with other content — another value, time, device or type — is a
different reading under a used key (a gateway counter reset, a bug, or tampering), the case
HL7 v2 answers with AR 205. Silently keeping the first and answering "duplicate" would drop the
second without anyone knowing, so ingest compares the two as normalised content: units
converted, time as a UTC instant (a re-send that only writes the offset differently is the same
reading), field order and unknown extra fields irrelevant.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.devices.models import Device, Measurement, Reading
from vitalbridge.devices.readings import NormalizedReading

Fingerprint = tuple[object, ...]


def _number(value: float | None) -> float | None:
    # Stored floats come back from either backend as IEEE doubles; rounding keeps the comparison
    # about readings, not about the last bit of a conversion.
    return None if value is None else round(value, 6)


def _measurements(rows: list[tuple[str, str, float | None, float | None, float | None]]) -> tuple[object, ...]:
    return tuple(sorted((k, u, _number(v), _number(s), _number(d)) for k, u, v, s, d in rows))


def of_incoming(reading: NormalizedReading) -> Fingerprint:
    src = reading.source
    return (
        src.device.serial,
        src.reading_type.value,
        src.measured_at.astimezone(UTC),
        src.irregular_heartbeat,
        src.meal_context.value if src.meal_context else None,
        _measurements([(m.kind.value, m.unit.value, m.value, m.systolic, m.diastolic) for m in reading.measurements]),
    )


def of_stored(session: Session, reading_ids: list[str]) -> dict[str, Fingerprint]:
    """Fingerprints of stored readings by reading id (two queries for any number)."""
    if not reading_ids:
        return {}
    rows: dict[str, list[tuple[str, str, float | None, float | None, float | None]]] = defaultdict(list)
    for m in session.scalars(select(Measurement).where(Measurement.reading_id.in_(reading_ids))):
        rows[m.reading_id].append((m.kind.value, m.unit.value, m.value, m.systolic, m.diastolic))
    out: dict[str, Fingerprint] = {}
    for reading, serial in session.execute(
        select(Reading, Device.serial).join(Device, Device.id == Reading.device_id).where(Reading.id.in_(reading_ids))
    ).all():
        out[reading.id] = (
            serial,
            reading.reading_type.value,
            reading.measured_at.astimezone(UTC),
            reading.irregular_heartbeat,
            reading.meal_context.value if reading.meal_context else None,
            _measurements(rows[reading.id]),
        )
    return out
