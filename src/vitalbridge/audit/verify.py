"""Prove the audit chain (SPEC §9: "a verify command proves the chain").

Walks the entries in ``seq`` order, in bounded batches, and stops at the first broken link:

- **missing**: a ``seq`` is absent (a row was deleted);
- **edited**: a row no longer hashes to its ``entry_hash`` (a field was changed);
- **reordered**: a row hashes correctly only under another ``seq`` (rows were swapped or moved);
- **relinked**: a row's ``prev_hash`` is not its predecessor's hash (a row was rewritten with a
  fresh hash, or one was inserted or replaced);
- **anchor** / **checkpoint**: the first entry after a prune does not match the checkpoint, or the
  checkpoint is not corroborated by the ``audit.pruned`` entry that recorded it.

A hash chain without a secret proves the rows are unchanged *relative to each other*. Someone who
can rewrite every row after a point can rebuild the chain, and deleting the newest rows leaves a
valid (shorter) chain; keep the printed head (``seq``/hash) somewhere else and pass it back with
``--anchor`` to detect both.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.audit.chain import GENESIS_HASH, HASHED_FIELDS, entry_hash, fields_of
from vitalbridge.audit.models import AuditCheckpoint, AuditEntry

PRUNE_ACTION = "audit.pruned"
# How far from its position a moved row is looked for before it is called "edited".
_MOVE_WINDOW = 1000


class BreakKind(enum.StrEnum):
    missing = "missing"
    edited = "edited"
    reordered = "reordered"
    relinked = "relinked"
    anchor = "anchor"
    checkpoint = "checkpoint"


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    kind: BreakKind
    message: str


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    first_seq: int | None
    head_seq: int | None
    head_hash: str | None
    checkpoint_through: int | None
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None


_COLUMNS = [getattr(AuditEntry, name) for name in (*HASHED_FIELDS, "prev_hash", "entry_hash")]


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.through_seq.desc()).limit(1))


def _moved_from(row: Any) -> int | None:
    """The seq under which this row's content hashes correctly, if near its position."""
    fields = fields_of(row)
    seq: int = row.seq
    for delta in range(1, _MOVE_WINDOW + 1):
        for candidate in (seq - delta, seq + delta):
            if candidate < 1:
                continue
            fields["seq"] = candidate
            if entry_hash(row.prev_hash, fields) == row.entry_hash:
                return candidate
    return None


def _check_prune_record(row: Any, cp: AuditCheckpoint) -> ChainBreak | None:
    detail = row.detail or {}
    if (
        row.action != PRUNE_ACTION
        or detail.get("through_seq") != cp.through_seq
        or detail.get("anchor_hash") != cp.anchor_hash
    ):
        return ChainBreak(
            row.seq,
            BreakKind.checkpoint,
            f"the checkpoint through seq {cp.through_seq} is not the one entry {row.seq} recorded "
            "(checkpoint forged or altered)",
        )
    return None


def verify_chain(
    session: Session,
    *,
    through_seq: int | None = None,
    anchor: tuple[int, str] | None = None,
    batch_size: int = 1000,
) -> VerifyResult:
    """Check every link from the start (or the latest prune checkpoint) to the head.

    ``through_seq`` stops early (prune verifies only what it is about to remove); ``anchor`` is
    a ``(seq, entry_hash)`` pair kept outside the database that must still be in the chain.
    """
    cp = latest_checkpoint(session)
    expected_seq = cp.through_seq + 1 if cp else 1
    expected_prev = cp.anchor_hash if cp else GENESIS_HASH
    corroborated = cp is None
    checked = 0
    first_seq: int | None = None
    last: tuple[int, str] | None = None
    anchor_seen = anchor is None

    def result(broken: ChainBreak | None) -> VerifyResult:
        return VerifyResult(
            checked=checked,
            first_seq=first_seq,
            head_seq=last[0] if last else None,
            head_hash=last[1] if last else None,
            checkpoint_through=cp.through_seq if cp else None,
            broken=broken,
        )

    cursor = expected_seq - 1
    while True:
        query = select(*_COLUMNS).where(AuditEntry.seq > cursor).order_by(AuditEntry.seq).limit(batch_size)
        if through_seq is not None:
            query = query.where(AuditEntry.seq <= through_seq)
        rows = session.execute(query).all()
        if not rows:
            break
        for row in rows:
            cursor = row.seq
            if first_seq is None:
                first_seq = row.seq
            if row.seq != expected_seq:
                gap = f"{expected_seq}" if row.seq == expected_seq + 1 else f"{expected_seq}..{row.seq - 1}"
                return result(ChainBreak(expected_seq, BreakKind.missing, f"entries {gap} are missing (deleted rows)"))
            if entry_hash(row.prev_hash, fields_of(row)) != row.entry_hash:
                moved = _moved_from(row)
                if moved is not None:
                    return result(
                        ChainBreak(
                            row.seq,
                            BreakKind.reordered,
                            f"entry {row.seq} holds the entry written as seq {moved} (rows reordered)",
                        )
                    )
                return result(
                    ChainBreak(row.seq, BreakKind.edited, f"entry {row.seq} was altered after it was written")
                )
            if row.prev_hash != expected_prev:
                if cp is not None and row.seq == cp.through_seq + 1:
                    return result(
                        ChainBreak(
                            row.seq,
                            BreakKind.anchor,
                            f"entry {row.seq} does not continue the prune checkpoint through seq {cp.through_seq}",
                        )
                    )
                return result(
                    ChainBreak(
                        row.seq,
                        BreakKind.relinked,
                        f"entry {row.seq} does not follow entry {row.seq - 1} "
                        "(an entry was rewritten, inserted or replaced)",
                    )
                )
            if cp is not None and row.seq == cp.record_seq:
                broken = _check_prune_record(row, cp)
                if broken is not None:
                    return result(broken)
                corroborated = True
            if anchor is not None and row.seq == anchor[0]:
                if row.entry_hash != anchor[1]:
                    return result(
                        ChainBreak(row.seq, BreakKind.relinked, f"entry {row.seq} differs from the kept anchor")
                    )
                anchor_seen = True
            checked += 1
            expected_prev = row.entry_hash
            expected_seq = row.seq + 1
            last = (row.seq, row.entry_hash)
    if cp is not None and not corroborated and (through_seq is None or cp.record_seq <= through_seq):
        return result(
            ChainBreak(
                cp.record_seq,
                BreakKind.checkpoint,
                f"the entry {cp.record_seq} that recorded the prune through seq {cp.through_seq} is missing",
            )
        )
    if not anchor_seen and anchor is not None:
        return result(
            ChainBreak(
                anchor[0],
                BreakKind.missing,
                f"the kept anchor seq {anchor[0]} is no longer in the chain (newest entries deleted?)",
            )
        )
    return result(None)
