"""Retention of the audit trail (SPEC §9: seven years by policy) and the one deletion path.

``prune`` removes the oldest entries, never inside ``VB_AUDIT_RETENTION_DAYS``. It keeps the
remaining chain verifiable: within one transaction, under the chain lock, it

1. verifies the entries it is about to remove (evidence of tampering is never destroyed),
2. appends an ``audit.pruned`` entry naming the last removed ``seq`` and its hash,
3. stores an ``AuditCheckpoint`` with the same anchor, and
4. deletes the covered entries: on PostgreSQL after ``SET LOCAL vitalbridge.audit_prune = 'on'``,
   the only state in which the append-only trigger lets a DELETE through, and then only for rows
   a checkpoint covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from vitalbridge.audit.models import AuditCheckpoint, AuditEntry
from vitalbridge.audit.service import Actor, Outcome, lock_chain, record
from vitalbridge.audit.verify import PRUNE_ACTION, latest_checkpoint, verify_chain
from vitalbridge.db.base import utcnow
from vitalbridge.errors import Conflict, FieldError, ValidationFailed
from vitalbridge.settings import Settings


@dataclass(frozen=True)
class PruneResult:
    pruned: int
    through_seq: int | None
    record_seq: int | None


def retention_horizon(settings: Settings, now: datetime | None = None) -> datetime:
    """Entries that occurred at or after this instant must be kept."""
    return (now or utcnow()) - timedelta(days=settings.audit_retention_days)


def prune(
    session: Session,
    *,
    before: datetime,
    settings: Settings,
    actor: Actor | str,
    now: datetime | None = None,
) -> PruneResult:
    if before.tzinfo is None:
        raise ValueError("naive datetime given to prune")
    horizon = retention_horizon(settings, now)
    if before > horizon:
        raise ValidationFailed(
            f"refusing to prune inside the retention window of {settings.audit_retention_days} days: "
            f"the latest allowed --before is {horizon.date().isoformat()}",
            [FieldError(("before",), "inside the retention window", "retention")],
        )
    lock_chain(session)
    head = session.scalar(select(func.max(AuditEntry.seq)))
    if head is None:
        return PruneResult(0, None, None)
    # Entries may carry an occurred_at earlier than their neighbours; cut before the first young one.
    first_kept = session.scalar(select(func.min(AuditEntry.seq)).where(AuditEntry.occurred_at >= before))
    cut = head if first_kept is None else first_kept - 1
    cp = latest_checkpoint(session)
    already = cp.through_seq if cp else 0
    if cut <= already:
        return PruneResult(0, None, None)
    check = verify_chain(session, through_seq=cut + 1)
    if check.broken is not None:
        raise Conflict(
            f"the audit chain is broken at seq {check.broken.seq} ({check.broken.kind.value}); "
            "nothing was pruned: investigate with `vitalbridge audit verify`"
        )
    anchor = session.scalar(select(AuditEntry.entry_hash).where(AuditEntry.seq == cut))
    assert anchor is not None  # verified contiguous above
    count = session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.seq <= cut)) or 0
    entry = record(
        session,
        action=PRUNE_ACTION,
        outcome=Outcome.success,
        actor=actor,
        resource_type="AuditEntry",
        detail={
            "through_seq": cut,
            "anchor_hash": anchor,
            "pruned_count": count,
            "cutoff": before.isoformat(),
            "retention_days": settings.audit_retention_days,
        },
    )
    session.add(
        AuditCheckpoint(
            through_seq=cut,
            anchor_hash=anchor,
            pruned_count=count,
            cutoff=before,
            record_seq=entry.seq,
            actor=str(actor),
        )
    )
    session.flush()
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("SET LOCAL vitalbridge.audit_prune = 'on'"))
    session.execute(delete(AuditEntry).where(AuditEntry.seq <= cut).execution_options(synchronize_session=False))
    if postgres:
        session.execute(text("SET LOCAL vitalbridge.audit_prune = 'off'"))
    return PruneResult(count, cut, entry.seq)
