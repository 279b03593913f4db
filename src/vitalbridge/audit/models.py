"""The audit tables (SPEC §9). Rows are inserted, never updated or deleted by application code;
database triggers (migration ``0004_audit_guards``) refuse UPDATE, DELETE and TRUNCATE, except
the deletion of entries a checkpoint already covers, on the prune path."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from vitalbridge.db.base import Base, new_id, utcnow
from vitalbridge.db.types import UTCDateTime


class AuditEntry(Base):
    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_org_seq", "organization_id", "seq"),)

    # Assigned by ``record`` under the chain lock (not by the database) so that the hash can
    # cover it: a reordered or deleted row then breaks the chain.
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    organization_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    practice_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    resource_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resource_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    correlation_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # Identifiers and codes only — never PHI values, secrets or free text from outside.
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditCheckpoint(Base):
    """Where the chain starts after ``vitalbridge audit prune`` removed its oldest entries.

    The first remaining entry must have ``seq == through_seq + 1`` and ``prev_hash ==
    anchor_hash``; the prune itself is an entry in the chain (``record_seq``) that repeats both
    values, so a forged checkpoint does not match the chain it claims to anchor.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Last pruned seq and its entry_hash.
    through_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), unique=True)
    anchor_hash: Mapped[str] = mapped_column(String(64))
    pruned_count: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    # ``--before``: entries that occurred before this instant were eligible.
    cutoff: Mapped[datetime] = mapped_column(UTCDateTime())
    # seq of the ``audit.pruned`` entry that recorded this prune.
    record_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    actor: Mapped[str] = mapped_column(String(100))
