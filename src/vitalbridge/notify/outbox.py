"""The push outbox state machine (SPEC §8), the same shape as the EHR outbox (SPEC §7):

```
   pending ──claim (lease)──▶ in_flight ──FCM 200──▶ sent
      ▲                          │
      │  retry: attempts+1,      ├──token dead──▶ dead   (device pruned, its other pushes cancelled)
      │  next_attempt_at =       ├──permanent / too old──▶ dead
      └──max(Retry-After, backoff)┤
         lease expired (sweeper) ─┘
   pending ──device pruned/removed, or the alert moved on──▶ cancelled
```

Claims are an atomic state change (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's single
writer serialises them). A sender that dies mid-send leaves an ``in_flight`` row whose lease
expires and is claimed again: a push may then be delivered twice, never lost — the alert id
is the collapse key, so a second copy replaces the first on the phone.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vitalbridge.notify.codes import PushStatus
from vitalbridge.notify.models import PushOutbox

BACKOFF_BASE_S = 10.0
BACKOFF_CAP_S = 1800.0


def backoff_s(attempts: int, *, rng: random.Random | None = None) -> float:
    """Exponential from 10 s, capped at 30 min, with ±20 % jitter so retries do not stampede."""
    base: float = min(BACKOFF_BASE_S * 2.0 ** min(max(attempts - 1, 0), 20), BACKOFF_CAP_S)
    jitter: float = (rng or random).uniform(0.8, 1.2)
    return base * jitter


def requeue_expired(session: Session, *, now: datetime) -> int:
    """Rows whose sender vanished (lease expired) become claimable again."""
    result = session.execute(
        update(PushOutbox)
        .where(PushOutbox.status == PushStatus.in_flight, PushOutbox.lease_expires_at < now)
        .values(status=PushStatus.pending, lease_owner=None, lease_expires_at=None, next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def claim(session: Session, *, owner: str, now: datetime, lease_s: float, limit: int = 20) -> list[PushOutbox]:
    rows = list(
        session.scalars(
            select(PushOutbox)
            .where(PushOutbox.status == PushStatus.pending, PushOutbox.next_attempt_at <= now)
            .order_by(PushOutbox.next_attempt_at, PushOutbox.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        row.status = PushStatus.in_flight
        row.lease_owner = owner
        row.lease_expires_at = now + timedelta(seconds=lease_s)
        row.attempts += 1
        row.updated_at = now
    session.flush()
    return rows


def still_mine(session: Session, row_id: str, owner: str) -> PushOutbox | None:
    """The row, locked, if this sender still holds its lease (else another sender took over)."""
    row = session.scalar(select(PushOutbox).where(PushOutbox.id == row_id).with_for_update())
    if row is None or row.status is not PushStatus.in_flight or row.lease_owner != owner:
        return None
    return row


def finish(row: PushOutbox, status: PushStatus, *, now: datetime, error: str | None = None) -> None:
    row.status = status
    row.lease_owner = None
    row.lease_expires_at = None
    row.updated_at = now
    if error is not None:
        row.last_error = error[:500]
    if status is PushStatus.sent:
        row.sent_at = now


def retry_later(row: PushOutbox, *, now: datetime, retry_after_s: float | None, error: str) -> None:
    wait = backoff_s(row.attempts)
    if retry_after_s is not None:
        # FCM asked for a pause (429/503 Retry-After): never come back sooner.
        wait = max(wait, retry_after_s)
    finish(row, PushStatus.pending, now=now, error=error)
    row.next_attempt_at = now + timedelta(seconds=wait)
