"""Registry tables. PHI (names, birth date, MRN, phone, address) lives here and nowhere else."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from vitalbridge.db.base import Base, new_id, utcnow
from vitalbridge.db.types import UTCDateTime


class PatientStatus(enum.StrEnum):
    active = "active"
    inactive = "inactive"  # discharged from the RPM program; readings still stored
    merged = "merged"  # folded into another local patient (HL7 A40 / EHR replaced-by)


class Program(Base):
    """An RPM program (e.g. hypertension, CHF); its ``rules`` are the triage defaults."""

    __tablename__ = "programs"
    __table_args__ = (UniqueConstraint("organization_id", "code", name="uq_programs_org_code"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Provider(Base):
    """A clinician responsible for patients; optionally a hub user who receives alerts."""

    __tablename__ = "providers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    npi: Mapped[str | None] = mapped_column(String(10), nullable=True)
    ehr_practitioner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (
        UniqueConstraint("practice_id", "ehr_id", name="uq_patients_practice_ehr_id"),
        Index("ix_patients_practice_mrn", "practice_id", "mrn"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"), index=True)
    # The EHR's FHIR Patient id; None until known (an ADT feed may announce a patient first).
    ehr_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mrn: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mrn_system: Mapped[str | None] = mapped_column(String(255), nullable=True)
    identifiers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    given_name: Mapped[str] = mapped_column(String(200), default="")
    family_name: Mapped[str] = mapped_column(String(200), default="")
    birth_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    gender: Mapped[str | None] = mapped_column(String(16), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    address: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    program_id: Mapped[str | None] = mapped_column(ForeignKey("programs.id", ondelete="SET NULL"), nullable=True)
    provider_id: Mapped[str | None] = mapped_column(ForeignKey("providers.id", ondelete="SET NULL"), nullable=True)
    status: Mapped[PatientStatus] = mapped_column(
        Enum(PatientStatus, native_enum=False, length=16), default=PatientStatus.active
    )
    merged_into_id: Mapped[str | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"), nullable=True)
    # Why the status last changed, as a code (``ehr_gone``, ``fhir.replaced-by`` …), never free text.
    status_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # When demographics were last read from the EHR (search import, bulk sync, re-link).
    ehr_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class PatientEhrAlias(Base):
    """An EHR id a patient used to have (EHR merge / replaced-by), kept so late references resolve."""

    __tablename__ = "patient_ehr_aliases"
    __table_args__ = (UniqueConstraint("practice_id", "ehr_id", name="uq_patient_ehr_aliases_practice_ehr_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"))
    ehr_id: Mapped[str] = mapped_column(String(64))
    replaced_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BulkSyncStatus(enum.StrEnum):
    """Life of a Bulk Data ``$export`` sync (SPEC §4 "Population sync")."""

    kicked_off = "kicked_off"  # the EHR accepted the export; polling its status URL
    downloading = "downloading"  # manifest received; NDJSON files being imported
    completed = "completed"
    failed = "failed"  # stopped by an error the sync cannot get past (see ``error``)
    cancelled = "cancelled"  # stopped by the operator; the export was DELETEd at the EHR


UNFINISHED_SYNC = (BulkSyncStatus.kicked_off, BulkSyncStatus.downloading)


class BulkSyncJob(Base):
    """One population sync of a practice: enough state to resume after a crash without duplicates."""

    __tablename__ = "bulk_sync_jobs"
    __table_args__ = (Index("ix_bulk_sync_jobs_practice_status", "practice_id", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"))
    status: Mapped[BulkSyncStatus] = mapped_column(
        Enum(BulkSyncStatus, native_enum=False, length=16), default=BulkSyncStatus.kicked_off
    )
    group_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The export's status URL (Content-Location of the kick-off); the EHR's, not ours.
    status_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    transaction_time: Mapped[str | None] = mapped_column(String(64), nullable=True)
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    polls: Mapped[int] = mapped_column(Integer, default=0)
    patients_created: Mapped[int] = mapped_column(Integer, default=0)
    patients_updated: Mapped[int] = mapped_column(Integer, default=0)
    lines_rejected: Mapped[int] = mapped_column(Integer, default=0)
    # Registry patients retired because the manifest's ``deleted`` files named them (a _since sync).
    patients_retired: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Issues from the manifest's ``error`` files and rejected lines: codes, line numbers, the
    # EHR's diagnostics (kept in the database, which may hold PHI; never printed or logged).
    issues: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class BulkSyncFile(Base):
    """One NDJSON output of an export. ``lines_done``/``bytes_done`` commit with each batch."""

    __tablename__ = "bulk_sync_files"
    __table_args__ = (UniqueConstraint("job_id", "position", name="uq_bulk_sync_files_job_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(ForeignKey("bulk_sync_jobs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    resource_type: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(1000))
    is_error: Mapped[bool] = mapped_column(default=False)  # an OperationOutcome file of the manifest's ``error``
    # A file of the manifest's ``deleted`` list: Bundles of DELETE entries (Bulk Data IG, _since).
    is_deleted: Mapped[bool] = mapped_column(default=False, server_default=false())
    expected_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lines_done: Mapped[int] = mapped_column(Integer, default=0)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    done: Mapped[bool] = mapped_column(default=False)
