"""API bodies of the patient registry (SPEC §4): EHR search and import, patients, providers, programs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vitalbridge.api.types import REF_PATTERN, SafeText
from vitalbridge.patients.models import BulkSyncStatus, PatientStatus

FHIR_ID_PATTERN = r"^[A-Za-z0-9\-.]{1,64}$"
CODE = r"^[a-z0-9][a-z0-9_-]{0,63}$"
NPI = r"^\d{10}$"


class SearchHit(BaseModel):
    ecw_id: str
    first_name: str
    last_name: str
    date_of_birth: date | None
    gender: str | None
    mrn: str | None
    phone: str | None
    already_imported: bool


class SearchOut(BaseModel):
    count: int
    patients: list[SearchHit]
    total: int | None = Field(default=None, description="matches the EHR reported (Bundle.total), if it did")
    unreadable: int = Field(default=0, description="EHR entries skipped because they were not valid Patients")


class ImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    practice: str | None = Field(default=None, pattern=REF_PATTERN, description="practice id or code")
    patient_ids: list[str] = Field(min_length=1, max_length=100, description="EHR Patient ids")
    assign_to_provider: str | None = Field(default=None, pattern=REF_PATTERN, description="provider id")
    program: str | None = Field(default=None, pattern=REF_PATTERN, description="program id or code")


class ImportedPatient(BaseModel):
    id: str | None = Field(description="registry id (null when the patient could not be imported)")
    ecw_id: str
    name: str
    status: str = Field(description="created | updated | relinked | not_found | invalid | inactive")


class ImportOut(BaseModel):
    imported: int
    skipped: int
    patients: list[ImportedPatient]


class ProviderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SafeText = Field(min_length=1, max_length=200)
    npi: str | None = Field(default=None, pattern=NPI, description="10-digit National Provider Identifier")
    ehr_practitioner_id: str | None = Field(default=None, pattern=FHIR_ID_PATTERN)
    user_id: str | None = Field(default=None, pattern=REF_PATTERN, description="hub user who receives alerts")


class ProviderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    npi: str | None
    ehr_practitioner_id: str | None
    user_id: str | None
    created_at: datetime


class ProgramIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=CODE, description="short code, e.g. htn or chf")
    name: SafeText = Field(min_length=1, max_length=200)
    rules: dict[str, Any] = Field(default_factory=dict, description="triage defaults (docs/triage.md)")


class ProgramOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    code: str
    name: str
    rules: dict[str, Any]
    created_at: datetime


class PatientRef(BaseModel):
    id: str
    name: str


class DeviceRef(BaseModel):
    serial: str
    model: str | None = None


class PatientOut(BaseModel):
    id: str
    practice_id: str
    practice_code: str
    ehr_id: str | None
    mrn: str | None
    first_name: str
    last_name: str
    date_of_birth: date | None
    gender: str | None
    phone: str | None
    status: PatientStatus
    status_reason: str | None
    merged_into_id: str | None
    program: PatientRef | None
    provider: PatientRef | None
    devices: list[DeviceRef]
    ehr_aliases: list[str] = Field(description="EHR ids the patient had before EHR merges")
    ehr_synced_at: datetime | None
    created_at: datetime
    updated_at: datetime


class PatientPage(BaseModel):
    total: int
    limit: int
    offset: int
    patients: list[PatientOut]


class SyncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    practice: str | None = Field(default=None, pattern=REF_PATTERN)
    since: datetime | None = Field(default=None, description="only patients changed since (FHIR _since)")
    group: str | None = Field(default=None, pattern=FHIR_ID_PATTERN, description="Group id to export")


class SyncFileOut(BaseModel):
    resource_type: str
    is_error: bool
    is_deleted: bool = False  # a file of the manifest's ``deleted`` list
    expected_count: int | None
    lines_done: int
    done: bool


class SyncOut(BaseModel):
    id: str
    practice_id: str
    status: BulkSyncStatus
    group_id: str | None
    since: datetime | None
    polls: int
    patients_created: int
    patients_updated: int
    lines_rejected: int
    patients_retired: int = 0  # named in the manifest's ``deleted`` files (a _since sync)
    issues: int
    error: str | None
    files: list[SyncFileOut]
    created_at: datetime
    finished_at: datetime | None
