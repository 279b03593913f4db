"""Billing tables (SPEC §13): enrollment episodes, the time log, frozen monthly reports.

PHI discipline: these rows hold ids, dates, codes and staff notes; notes may mention clinical
facts, so they are returned only to the owning organization's roles and never logged.
The time log is append-only by construction: no code path updates or deletes an entry; a
correction is a new row whose ``corrects_id`` names the entry it replaces (at most once).
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vitalbridge.billing.minutes import Activity, Modality
from vitalbridge.billing.rules import Credential
from vitalbridge.db.base import Base, new_id, utcnow
from vitalbridge.db.types import UTCDateTime, str_enum


class MonitoringProgram(enum.StrEnum):
    """Medicare lets a patient be in one of the two at a time, never both."""

    rpm = "rpm"  # remote physiologic monitoring (99453/99454/99445/99457/99458/99470/99091)
    rtm = "rtm"  # remote therapeutic monitoring (98975-98985): enrolled here, not billed by the hub


class ConsentModality(enum.StrEnum):
    verbal = "verbal"
    written = "written"
    electronic = "electronic"


class Episode(Base):
    """One enrollment of a patient in RPM or RTM, from ``started_on`` to ``ended_on`` (local dates)."""

    __tablename__ = "billing_episodes"
    __table_args__ = (
        Index("ix_billing_episodes_patient_started", "patient_id", "started_on"),
        Index("ix_billing_episodes_practice_started", "practice_id", "started_on"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"))
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    program: Mapped[MonitoringProgram] = mapped_column(str_enum(MonitoringProgram, 8))
    # IANA zone: the calendar days that qualify and the months time is summed over are this zone's.
    time_zone: Mapped[str] = mapped_column(String(64))
    ordering_practitioner_id: Mapped[str] = mapped_column(ForeignKey("providers.id", ondelete="RESTRICT"))
    condition_code: Mapped[str] = mapped_column(String(16))  # ICD-10-CM, e.g. I10
    consent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consent_modality: Mapped[ConsentModality] = mapped_column(str_enum(ConsentModality, 16))
    consent_recorded_by: Mapped[str] = mapped_column(String(200))
    setup_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    setup_staff: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The one practitioner who bills every period of this episode.
    billing_practitioner_id: Mapped[str] = mapped_column(ForeignKey("providers.id", ondelete="RESTRICT"))
    started_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    # The same bounds as UTC instants (local midnights), so reports select readings in SQL alike
    # on SQLite and PostgreSQL: [starts_at, ends_at).
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))


class PractitionerChange(Base):
    """A new billing practitioner for an episode from ``effective_from`` on: always the first day
    of a device period, so each period keeps exactly one billing practitioner."""

    __tablename__ = "billing_practitioner_changes"
    __table_args__ = (
        UniqueConstraint("episode_id", "effective_from", name="uq_billing_practitioner_changes_episode_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    episode_id: Mapped[str] = mapped_column(ForeignKey("billing_episodes.id", ondelete="CASCADE"))
    practitioner_id: Mapped[str] = mapped_column(ForeignKey("providers.id", ondelete="RESTRICT"))
    effective_from: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))


class TimeEntry(Base):
    """Care-management time: appended, never changed; corrected by a new entry."""

    __tablename__ = "billing_time_entries"
    __table_args__ = (
        Index("ix_billing_time_entries_practice_started", "practice_id", "started_at"),
        Index("ix_billing_time_entries_patient_started", "patient_id", "started_at"),
        UniqueConstraint("corrects_id", name="uq_billing_time_entries_corrects_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"))
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    staff: Mapped[str] = mapped_column(String(200))  # who did the work (name or staff id)
    credential: Mapped[Credential] = mapped_column(str_enum(Credential, 16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    seconds: Mapped[int] = mapped_column(Integer)
    activity: Mapped[Activity] = mapped_column(str_enum(Activity, 32))
    interactive: Mapped[bool] = mapped_column(Boolean, default=False)
    modality: Mapped[Modality | None] = mapped_column(str_enum(Modality, 16), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    corrects_id: Mapped[str | None] = mapped_column(
        ForeignKey("billing_time_entries.id", ondelete="RESTRICT"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))


class ReportKind(enum.StrEnum):
    closed = "closed"  # the month as closed (version 1): what was billed
    amendment = "amendment"  # a later recompute found different charges (late readings, corrections)


class ReportVersion(Base):
    """A frozen month of one practice. Version 1 is the close; later versions are amendments."""

    __tablename__ = "billing_reports"
    __table_args__ = (UniqueConstraint("practice_id", "month", "version", name="uq_billing_reports_practice_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"))
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[ReportKind] = mapped_column(str_enum(ReportKind, 16))
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    # Amendments: the patients whose charges differ from the previous version.
    changed_patient_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
