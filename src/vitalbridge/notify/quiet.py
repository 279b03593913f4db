"""Quiet hours (SPEC §6 alert workflow): non-critical pushes wait until the window ends.

A window is two local times in an IANA time zone, e.g. 22:00-07:00 America/Chicago; it may
cross midnight, and follows daylight-saving changes because it is evaluated in the zone.
A user's own window wins over the organization's default (``user_id`` NULL); with neither,
there are no quiet hours. A deferred push is not dropped: its ``next_attempt_at`` is the end of
the window. Critical alerts (new or escalated) ignore quiet hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from vitalbridge.errors import FieldError, ValidationFailed
from vitalbridge.notify.models import QuietHours


@dataclass(frozen=True)
class Window:
    time_zone: str
    starts: time
    ends: time

    @classmethod
    def parse(cls, time_zone: str, starts: str, ends: str) -> Window:
        errors: list[FieldError] = []
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            errors.append(FieldError(("body", "time_zone"), "not an IANA time zone name (e.g. America/Chicago)"))
        parsed: dict[str, time] = {}
        for name, value in (("starts", starts), ("ends", ends)):
            try:
                parsed[name] = time.fromisoformat(value)
                if len(value) != 5:
                    raise ValueError(value)
            except ValueError:
                errors.append(FieldError(("body", name), "a local time as HH:MM"))
        if errors:
            raise ValidationFailed("invalid quiet hours", errors)
        return cls(time_zone, parsed["starts"], parsed["ends"])

    def quiet_until(self, at: datetime) -> datetime | None:
        """The UTC end of the window if ``at`` falls inside it, else None."""
        if self.starts == self.ends:
            return None
        zone = ZoneInfo(self.time_zone)
        local = at.astimezone(zone)
        now_t = local.time().replace(tzinfo=None)
        if self.starts < self.ends:
            inside = self.starts <= now_t < self.ends
            end_day = local.date()
        else:  # crosses midnight: 22:00-07:00
            inside = now_t >= self.starts or now_t < self.ends
            end_day = local.date() + timedelta(days=1) if now_t >= self.starts else local.date()
        if not inside:
            return None
        # Wall-clock end in the zone (fold=0 picks the first of a repeated hour); a local time
        # skipped by a DST jump still maps to a real instant just after it.
        end_local = datetime.combine(end_day, self.ends, tzinfo=zone)
        return end_local.astimezone(UTC)


def window_for(session: Session, organization_id: str, user_id: str) -> Window | None:
    rows = session.scalars(
        select(QuietHours).where(
            QuietHours.organization_id == organization_id,
            (QuietHours.user_id == user_id) | QuietHours.user_id.is_(None),
        )
    ).all()
    mine = next((r for r in rows if r.user_id == user_id), None)
    chosen = mine or next((r for r in rows if r.user_id is None), None)
    if chosen is None:
        return None
    return Window.parse(chosen.time_zone, chosen.starts, chosen.ends)


def get(session: Session, organization_id: str, user_id: str | None) -> QuietHours | None:
    q = select(QuietHours).where(QuietHours.organization_id == organization_id)
    q = q.where(QuietHours.user_id == user_id) if user_id else q.where(QuietHours.user_id.is_(None))
    return session.scalar(q)


def put(
    session: Session, organization_id: str, user_id: str | None, window: Window | None, *, now: datetime
) -> QuietHours | None:
    """Set (or with ``window`` None, remove) the user's or the organization's quiet hours."""
    row = get(session, organization_id, user_id)
    if window is None:
        if row is not None:
            session.delete(row)
        return None
    if row is None:
        row = QuietHours(organization_id=organization_id, user_id=user_id)
        session.add(row)
    row.time_zone = window.time_zone
    row.starts = window.starts.strftime("%H:%M")
    row.ends = window.ends.strftime("%H:%M")
    row.updated_at = now
    session.flush()
    return row
