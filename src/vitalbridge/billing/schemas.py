"""API shapes for billing (SPEC §13). Field rules here are the API's 422s."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from vitalbridge.api.types import REF_PATTERN, SafeText
from vitalbridge.billing.minutes import Activity, Modality
from vitalbridge.billing.models import ConsentModality, Episode, MonitoringProgram, TimeEntry
from vitalbridge.billing.rules import Credential

# ICD-10-CM: a letter, two characters, then up to four after an optional dot (e.g. I10, E11.9, I50.22).
ICD10_PATTERN = r"^[A-TV-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$"
MONTH_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"
# Dates outside this range are typing errors, and far ones overflow time-zone arithmetic.
EARLIEST, LATEST = date(2000, 1, 1), date(2099, 12, 31)
_ZONE_TEXT = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")
# Longest care-management entry accepted: a working day; longer is a typo (minutes for seconds).
MAX_ENTRY_SECONDS = 12 * 3600


def _zone(value: str) -> str:
    if not _ZONE_TEXT.match(value) or len(value) > 64:
        raise ValueError("must be an IANA time zone name such as America/Chicago")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone name such as America/Chicago") from None
    return value


def _day(value: date) -> date:
    if not EARLIEST <= value <= LATEST:
        raise ValueError("must be between 2000-01-01 and 2099-12-31")
    return value


def _instant(value: datetime) -> datetime:
    _day(value.date())
    return value


TimeZoneName = Annotated[str, AfterValidator(_zone)]
Day = Annotated[date, AfterValidator(_day)]
Instant = Annotated[AwareDatetime, AfterValidator(_instant)]
Ref = Annotated[str, Field(pattern=REF_PATTERN)]
Staff = Annotated[SafeText, Field(min_length=1, max_length=200)]

_STRICT = ConfigDict(extra="forbid")


class ConsentIn(BaseModel):
    model_config = _STRICT

    at: Instant
    modality: ConsentModality
    recorded_by: Staff


class SetupIn(BaseModel):
    model_config = _STRICT

    on: Day
    staff: Staff


class EpisodeIn(BaseModel):
    model_config = _STRICT

    patient_id: Ref
    program: MonitoringProgram = MonitoringProgram.rpm
    time_zone: TimeZoneName = Field(description="IANA zone of the patient: qualifying days are its calendar days")
    ordering_practitioner_id: Ref = Field(description="provider id of the physician/QHP who ordered monitoring")
    condition_code: str = Field(pattern=ICD10_PATTERN, description="ICD-10-CM code of the monitored condition")
    consent: ConsentIn
    setup: SetupIn | None = None
    billing_practitioner_id: Ref = Field(description="provider id of the one practitioner who bills the episode")
    started_on: Day
    ended_on: Day | None = None

    @model_validator(mode="after")
    def _dates(self) -> Self:
        if self.ended_on is not None and self.ended_on < self.started_on:
            raise ValueError("ended_on must not be before started_on")
        return self


class EpisodeEndIn(BaseModel):
    model_config = _STRICT

    ended_on: Day


class PractitionerChangeIn(BaseModel):
    model_config = _STRICT

    practitioner_id: Ref = Field(description="provider id of the new billing practitioner")


class PractitionerChangeOut(BaseModel):
    practitioner_id: str
    effective_from: date = Field(description="first day of the next device period (today before any)")


class SetupUpdateIn(SetupIn):
    """Setup/education is often done after enrollment; it may be recorded once, later."""


class EpisodeOut(BaseModel):
    id: str
    patient_id: str
    practice_id: str
    program: MonitoringProgram
    time_zone: str
    ordering_practitioner_id: str
    condition_code: str
    consent_at: datetime
    consent_modality: ConsentModality
    consent_recorded_by: str
    setup_on: date | None
    setup_staff: str | None
    billing_practitioner_id: str
    started_on: Day
    ended_on: Day | None
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, e: Episode) -> EpisodeOut:
        return cls(
            id=e.id,
            patient_id=e.patient_id,
            practice_id=e.practice_id,
            program=e.program,
            time_zone=e.time_zone,
            ordering_practitioner_id=e.ordering_practitioner_id,
            condition_code=e.condition_code,
            consent_at=e.consent_at,
            consent_modality=e.consent_modality,
            consent_recorded_by=e.consent_recorded_by,
            setup_on=e.setup_on,
            setup_staff=e.setup_staff,
            billing_practitioner_id=e.billing_practitioner_id,
            started_on=e.started_on,
            ended_on=e.ended_on,
            created_at=e.created_at,
            created_by=e.created_by,
        )


class TimeEntryIn(BaseModel):
    """One block of care-management time: ``ended_at`` or ``minutes``, not both."""

    model_config = _STRICT

    patient_id: Ref
    staff: Staff
    credential: Credential
    started_at: Instant
    ended_at: Instant | None = None
    minutes: float | None = Field(default=None, gt=0, le=MAX_ENTRY_SECONDS / 60, allow_inf_nan=False)
    activity: Activity
    interactive: bool = False
    modality: Modality | None = None
    note: SafeText | None = Field(default=None, max_length=4000)

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if (self.ended_at is None) == (self.minutes is None):
            raise ValueError("give either ended_at or minutes")
        if self.ended_at is not None:
            span = (self.ended_at - self.started_at).total_seconds()
            if span <= 0 or span > MAX_ENTRY_SECONDS:
                raise ValueError("ended_at must be after started_at and within 12 hours of it")
        if self.interactive and self.modality is None:
            raise ValueError("an interactive communication needs its modality")
        return self

    @property
    def seconds(self) -> int:
        if self.ended_at is not None:
            return int((self.ended_at - self.started_at).total_seconds())
        assert self.minutes is not None
        return round(self.minutes * 60)


class CorrectionIn(BaseModel):
    """Replaces the corrected entry; ``void`` withdraws it (counted as zero) with the reason in ``note``."""

    model_config = _STRICT

    void: bool = False
    staff: Staff | None = None
    credential: Credential | None = None
    started_at: Instant | None = None
    ended_at: Instant | None = None
    minutes: float | None = Field(default=None, gt=0, le=MAX_ENTRY_SECONDS / 60, allow_inf_nan=False)
    activity: Activity | None = None
    interactive: bool | None = None
    modality: Modality | None = None
    note: SafeText = Field(min_length=1, max_length=4000, description="why the entry is corrected")


class TimeEntryOut(BaseModel):
    id: str
    patient_id: str
    staff: str
    credential: Credential
    started_at: datetime
    ended_at: datetime | None
    seconds: int
    activity: Activity
    interactive: bool
    modality: Modality | None
    note: str | None
    corrects_id: str | None
    corrected_by_id: str | None = None
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, t: TimeEntry, corrected_by: str | None = None) -> TimeEntryOut:
        return cls(
            id=t.id,
            patient_id=t.patient_id,
            staff=t.staff,
            credential=t.credential,
            started_at=t.started_at,
            ended_at=t.ended_at,
            seconds=t.seconds,
            activity=t.activity,
            interactive=t.interactive,
            modality=t.modality,
            note=t.note,
            corrects_id=t.corrects_id,
            corrected_by_id=corrected_by,
            created_at=t.created_at,
            created_by=t.created_by,
        )


class ReportVersionOut(BaseModel):
    version: int
    kind: str
    created_at: datetime
    created_by: str
    changed_patient_ids: list[str]
    content_hash: str


class ReportOut(BaseModel):
    """A month of one practice: live (open month) or the closed version plus its amendments."""

    practice_id: str
    month: str
    status: str = Field(description="open (computed now) or closed (frozen at close)")
    report: dict[str, Any]
    versions: list[ReportVersionOut]
    amendments: list[dict[str, Any]] = Field(description="later versions' changed rows, oldest first")
