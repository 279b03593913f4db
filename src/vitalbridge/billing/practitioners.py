"""Changing an episode's billing practitioner (SPEC §13: one billing practitioner per period).

Only one practitioner may bill a patient's 30-day device period (duplicate-billing denials,
CARC 18), so a change never takes effect inside a period: it starts with the next device period.
Before the first qualifying reading no period has begun, and the change applies at once.
Charges name the practitioner in effect on their date of service (docs/billing.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.billing.days import PERIOD_DAYS
from vitalbridge.billing.episodes import get_episode
from vitalbridge.billing.models import Episode, PractitionerChange
from vitalbridge.devices.models import Reading
from vitalbridge.devices.readings import ReadingOrigin
from vitalbridge.errors import Conflict, FieldError, ValidationFailed
from vitalbridge.patients.models import Provider


@dataclass(frozen=True)
class Change:
    practitioner_id: str
    effective_from: date


def _first_day(session: Session, episode: Episode) -> date | None:
    q = select(func.min(Reading.measured_at)).where(
        Reading.patient_id == episode.patient_id,
        Reading.origin == ReadingOrigin.device,
        Reading.measured_at >= episode.starts_at,
    )
    if episode.ends_at is not None:
        q = q.where(Reading.measured_at < episode.ends_at)
    first = session.scalar(q)
    return first.astimezone(ZoneInfo(episode.time_zone)).date() if first else None


def change_practitioner(
    session: Session, organization_id: str, episode_id: str, practitioner_id: str, *, now: datetime, actor: Actor | str
) -> Change:
    episode = get_episode(session, organization_id, episode_id, lock=True)
    found = session.scalar(
        select(Provider.id).where(Provider.organization_id == organization_id, Provider.id == practitioner_id)
    )
    if found is None:
        raise ValidationFailed(
            "no such provider in this organization",
            [FieldError(("body", "practitioner_id"), "no such provider in this organization", "reference")],
        )
    first = _first_day(session, episode)
    if first is None:
        episode.billing_practitioner_id = practitioner_id
        change = Change(practitioner_id, episode.started_on)
    else:
        today = now.astimezone(ZoneInfo(episode.time_zone)).date()
        periods_begun = max(0, (today - first).days) // PERIOD_DAYS + 1
        effective = date.fromordinal(first.toordinal() + periods_begun * PERIOD_DAYS)
        if episode.ended_on is not None and effective > episode.ended_on:
            raise Conflict("the episode ends before its next device period; no period is left to bill differently")
        session.add(
            PractitionerChange(
                organization_id=organization_id,
                episode_id=episode.id,
                practitioner_id=practitioner_id,
                effective_from=effective,
                created_by=str(actor),
            )
        )
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError:
            raise Conflict("the billing practitioner already changes at the start of the next period") from None
        change = Change(practitioner_id, effective)
    record(
        session,
        action="billing.episode.practitioner_changed",
        outcome=Outcome.success,
        actor=actor,
        organization_id=organization_id,
        practice_id=episode.practice_id,
        resource_type="BillingEpisode",
        resource_ids=[episode.id, practitioner_id],
        detail={"effective_from": change.effective_from.isoformat()},
    )
    return change


def practitioner_on(episode: Episode, changes: Sequence[PractitionerChange], day: date) -> str:
    """Who bills a charge with this date of service: the latest change in effect, else the episode's."""
    current = episode.billing_practitioner_id
    for c in sorted(changes, key=lambda c: c.effective_from):
        if c.effective_from <= day:
            current = c.practitioner_id
    return current
