"""ORU^R01 results for practices whose delivery channel is ``hl7v2`` (SPEC §7 last bullet; HL7 v2.5.1
§7.3.1 ORU^R01, §7.4.1 OBR, §7.4.2 OBX).

Built from plain typed inputs, so the delivery worker needs nothing but a patient's identifiers
and a measurement. Layout (v2.5.1, UTF-8)::

    MSH|^~\\&|VITALBRIDGE|VITALBRIDGE|<app>|<facility>|<now>||ORU^R01^ORU_R01|<control id>|P|2.5.1|||||| UNICODE UTF-8
    PID|1||<MRN>^^^<authority>^MR~<EHR id>^^^<authority>^PI||<family>^<given>||<birth date>|<sex>
    ORC|RE||<measurement id>^VITALBRIDGE                    one ORC + OBR per measurement
    OBR|1||<measurement id>^VITALBRIDGE|<LOINC>^<display>^LN|||<observed at>|…|F
    OBX|1|NM|<LOINC>^<display>^LN||<value>|<UCUM>^<UCUM>^UCUM|||||F|||<observed at>||||<device id>||<instance>

One OBX per component: a blood-pressure panel (85354-9) gives systolic (8480-6) and diastolic
(8462-4) OBX under one OBR. The hub's measurement id travels in OBR-3 (filler order number) and
each OBX-21 (observation instance identifier, ``<measurement id>.<n>^VITALBRIDGE``), so a receiver can
recognise a resend; OBX-21 is defined from v2.6 and a v2.5.1 receiver ignores it. The control
id is derived from the measurement id, so a resend of the same measurement carries the same
MSH-10 too and a receiver that dedupes by control id drops it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from vitalbridge.errors import FieldError, ValidationFailed
from vitalbridge.hl7v2.codes import CharacterSet, IdentifierType, MessageType, ResultStatus, Version
from vitalbridge.hl7v2.datatypes import format_date, format_dtm, format_number
from vitalbridge.hl7v2.escaping import DEFAULT_DELIMITERS, escape

LOINC = "LN"  # HL7 table 0396 coding system for LOINC
UCUM = "UCUM"  # HL7 table 0396 coding system for UCUM units
HUB_NAMESPACE = "VITALBRIDGE"  # EI namespace id of identifiers the hub assigns

_SEX = {"female": "F", "male": "M", "other": "O", "unknown": "U"}


@dataclass(frozen=True)
class OruPatient:
    """Who the results are about. At least one of ``mrn`` and ``ehr_id`` is required."""

    mrn: str | None = None
    mrn_authority: str = ""
    ehr_id: str | None = None
    ehr_authority: str = ""
    family_name: str = ""
    given_name: str = ""
    birth_date: date | None = None
    gender: str | None = None  # FHIR administrative gender: female, male, other, unknown


@dataclass(frozen=True)
class OruComponent:
    """One numeric result: an OBX."""

    loinc: str
    display: str
    value: Decimal | int | float | str
    unit: str  # UCUM code, e.g. "mm[Hg]", "/min", "%", "kg", "mg/dL"


@dataclass(frozen=True)
class OruMeasurement:
    """One device measurement: an OBR with its OBX."""

    measurement_id: str  # the hub's id for the measurement (idempotency key)
    loinc: str  # OBR-4: the panel (85354-9) or the single observation's code
    display: str
    observed_at: datetime  # timezone-aware
    components: Sequence[OruComponent]
    device_id: str | None = None


@dataclass(frozen=True)
class OruParties:
    """MSH-3..6. The receiving side comes from the practice's interface registration."""

    receiving_application: str = ""
    receiving_facility: str = ""
    sending_application: str = HUB_NAMESPACE
    sending_facility: str = HUB_NAMESPACE


@dataclass(frozen=True)
class BuiltOru:
    control_id: str
    text: str  # segments separated by CR
    measurement_ids: tuple[str, ...] = field(default_factory=tuple)

    @property
    def payload(self) -> bytes:
        return self.text.encode("utf-8")


def control_id_for(measurement_ids: Sequence[str]) -> str:
    """20 characters derived from the measurements: stable across resends of the same results."""
    return hashlib.sha256("\x1f".join(measurement_ids).encode()).hexdigest()[:20].upper()


def _fields(seg_id: str, values: dict[int, str], first: int = 1) -> str:
    """A segment from {field number: text}; MSH starts at MSH-2 because MSH-1 is the separator itself."""
    last = max(values) if values else 0
    return "|".join([seg_id] + [values.get(i, "") for i in range(first, last + 1)])


def _validate(patient: OruPatient, measurements: Sequence[OruMeasurement]) -> None:
    errors: list[FieldError] = []
    if not (patient.mrn or patient.ehr_id):
        errors.append(FieldError(("patient",), "an MRN or an EHR patient id is required"))
    if not measurements:
        errors.append(FieldError(("measurements",), "at least one measurement is required"))
    for i, m in enumerate(measurements):
        if not m.measurement_id:
            errors.append(FieldError(("measurements", i, "measurement_id"), "required"))
        if not m.loinc:
            errors.append(FieldError(("measurements", i, "loinc"), "required"))
        if m.observed_at.tzinfo is None or m.observed_at.utcoffset() is None:
            errors.append(FieldError(("measurements", i, "observed_at"), "must carry a UTC offset"))
        if not m.components:
            errors.append(FieldError(("measurements", i, "components"), "at least one component is required"))
        for j, c in enumerate(m.components):
            if not c.loinc:
                errors.append(FieldError(("measurements", i, "components", j, "loinc"), "required"))
            if not c.unit:
                errors.append(FieldError(("measurements", i, "components", j, "unit"), "a UCUM unit is required"))
            try:
                format_number(c.value)
            except ValueError:
                errors.append(FieldError(("measurements", i, "components", j, "value"), "must be a finite number"))
    if errors:
        raise ValidationFailed("the ORU^R01 inputs are incomplete", errors)


def build_oru(
    patient: OruPatient,
    measurements: OruMeasurement | Sequence[OruMeasurement],
    *,
    parties: OruParties | None = None,
    control_id: str | None = None,
    now: datetime | None = None,
    processing_id: str = "P",
) -> BuiltOru:
    """An ORU^R01 v2.5.1 message, UTF-8, one OBR per measurement and one OBX per component."""
    items = [measurements] if isinstance(measurements, OruMeasurement) else list(measurements)
    _validate(patient, items)
    parties = parties or OruParties()
    d = DEFAULT_DELIMITERS

    def e(text: str) -> str:
        return escape(text, d)

    ids = tuple(m.measurement_id for m in items)
    ctrl = control_id or control_id_for(ids)
    msh = _fields(
        "MSH",
        {
            2: d.encoding_characters,
            3: e(parties.sending_application),
            4: e(parties.sending_facility),
            5: e(parties.receiving_application),
            6: e(parties.receiving_facility),
            7: format_dtm(now or datetime.now(UTC)),
            9: "^".join([MessageType.ORU.value, "R01", "ORU_R01"]),
            10: e(ctrl),
            11: e(processing_id),
            12: Version.v2_5_1.value,
            18: CharacterSet.utf_8.value,
        },
        first=2,
    )

    pid3: list[str] = []
    if patient.mrn:
        pid3.append(f"{e(patient.mrn)}^^^{e(patient.mrn_authority)}^{IdentifierType.MR.value}")
    if patient.ehr_id:
        pid3.append(f"{e(patient.ehr_id)}^^^{e(patient.ehr_authority)}^{IdentifierType.PI.value}")
    pid_values = {1: "1", 3: "~".join(pid3)}
    if patient.family_name or patient.given_name:
        pid_values[5] = f"{e(patient.family_name)}^{e(patient.given_name)}"
    if patient.birth_date is not None:
        pid_values[7] = format_date(patient.birth_date)
    if patient.gender:
        pid_values[8] = _SEX.get(patient.gender.lower(), "U")
    segments = [msh, _fields("PID", pid_values)]

    for n, m in enumerate(items, start=1):
        filler = f"{e(m.measurement_id)}^{HUB_NAMESPACE}"
        observed = format_dtm(m.observed_at)
        segments.append(_fields("ORC", {1: "RE", 3: filler}))
        segments.append(
            _fields(
                "OBR",
                {
                    1: str(n),
                    3: filler,
                    4: f"{e(m.loinc)}^{e(m.display)}^{LOINC}",
                    7: observed,
                    25: ResultStatus.final.value,
                },
            )
        )
        for k, c in enumerate(m.components, start=1):
            obx = {
                1: str(k),
                2: "NM",
                3: f"{e(c.loinc)}^{e(c.display)}^{LOINC}",
                5: format_number(c.value),
                6: f"{e(c.unit)}^{e(c.unit)}^{UCUM}",
                11: ResultStatus.final.value,
                14: observed,
                21: f"{e(m.measurement_id)}.{k}^{HUB_NAMESPACE}",
            }
            if m.device_id:
                obx[18] = e(m.device_id)
            segments.append(_fields("OBX", obx))
    return BuiltOru(control_id=ctrl, text="\r".join(segments) + "\r", measurement_ids=ids)
