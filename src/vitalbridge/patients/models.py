"""Registry tables. PHI (names, birth date, MRN, phone, address) lives here and nowhere else."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Enum, ForeignKey, Index, String, UniqueConstraint
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
