"""Enrollment episodes (SPEC §13): who is enrolled, since when, ordered and billed by whom.

A patient is in one program at a time: a new episode that overlaps any other of the same patient
(RPM or RTM) is refused with 409. The patient row is locked first so two concurrent enrolments
cannot both pass the overlap check.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from vitalbridge.audit import Actor, Outcome, record
from vitalbridge.billing.models import Episode
from vitalbridge.billing.schemas import EpisodeIn, SetupIn
from vitalbridge.errors import Conflict, FieldError, NotFound, ValidationFailed
from vitalbridge.patients.models import Patient, Provider


def local_midnight(day: date, time_zone: str) -> datetime:
    """The UTC instant a local calendar day begins (zoneinfo resolves DST gaps at midnight)."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(time_zone)).astimezone(UTC)


def _patient(session: Session, organization_id: str, patient_id: str, *, lock: bool = False) -> Patient:
    q = select(Patient).where(Patient.id == patient_id, Patient.organization_id == organization_id)
    patient = session.scalar(q.with_for_update() if lock else q)
    if patient is None:
        raise NotFound("no such patient in this organization")
    return patient


def _check_providers(session: Session, organization_id: str, body: EpisodeIn) -> None:
    refs = {
        "ordering_practitioner_id": body.ordering_practitioner_id,
        "billing_practitioner_id": body.billing_practitioner_id,
    }
    found = set(
        session.scalars(
            select(Provider.id).where(Provider.organization_id == organization_id, Provider.id.in_(refs.values()))
        )
    )
    errors = [
        FieldError(("body", name), "no such provider in this organization", "reference")
        for name, ref in refs.items()
        if ref not in found
    ]
    if errors:
        raise ValidationFailed("the episode names unknown providers", errors)


def overlapping(
    session: Session, patient_id: str, start: date, end: date | None, *, exclude: str | None = None
) -> Episode | None:
    """Another episode of the patient whose dates meet ``[start, end]`` (``None`` = open-ended)."""
    q = select(Episode).where(
        Episode.patient_id == patient_id,
        or_(Episode.ended_on.is_(None), Episode.ended_on >= start),
    )
    if end is not None:
        q = q.where(Episode.started_on <= end)
    if exclude is not None:
        q = q.where(Episode.id != exclude)
    return session.scalars(q.order_by(Episode.started_on).limit(1)).first()


def enroll(session: Session, organization_id: str, body: EpisodeIn, *, actor: Actor | str) -> Episode:
    patient = _patient(session, organization_id, body.patient_id, lock=True)
    _check_providers(session, organization_id, body)
    clash = overlapping(session, patient.id, body.started_on, body.ended_on)
    if clash is not None:
        raise Conflict(
            f"the patient already has a {clash.program.value.upper()} episode ({clash.id}) over these dates; "
            "a patient is in RPM or RTM, one episode at a time — end it first"
        )
    episode = Episode(
        organization_id=organization_id,
        practice_id=patient.practice_id,
        patient_id=patient.id,
        program=body.program,
        time_zone=body.time_zone,
        ordering_practitioner_id=body.ordering_practitioner_id,
        condition_code=body.condition_code,
        consent_at=body.consent.at,
        consent_modality=body.consent.modality,
        consent_recorded_by=body.consent.recorded_by,
        setup_on=body.setup.on if body.setup else None,
        setup_staff=body.setup.staff if body.setup else None,
        billing_practitioner_id=body.billing_practitioner_id,
        started_on=body.started_on,
        ended_on=body.ended_on,
        starts_at=local_midnight(body.started_on, body.time_zone),
        ends_at=local_midnight(body.ended_on + timedelta(days=1), body.time_zone) if body.ended_on else None,
        created_by=str(actor),
    )
    session.add(episode)
    session.flush()
    _audit(session, "billing.episode.created", episode, actor, {"program": episode.program.value})
    return episode


def get_episode(session: Session, organization_id: str, episode_id: str, *, lock: bool = False) -> Episode:
    q = select(Episode).where(Episode.id == episode_id, Episode.organization_id == organization_id)
    episode = session.scalar(q.with_for_update() if lock else q)
    if episode is None:
        raise NotFound("no such enrollment episode in this organization")
    return episode


def list_episodes(
    session: Session, organization_id: str, *, patient_id: str | None = None, limit: int = 100, offset: int = 0
) -> list[Episode]:
    q = select(Episode).where(Episode.organization_id == organization_id)
    if patient_id is not None:
        q = q.where(Episode.patient_id == patient_id)
    return list(session.scalars(q.order_by(Episode.started_on, Episode.id).limit(limit).offset(offset)))


def end_episode(
    session: Session, organization_id: str, episode_id: str, ended_on: date, *, actor: Actor | str
) -> Episode:
    episode = get_episode(session, organization_id, episode_id, lock=True)
    if ended_on < episode.started_on:
        raise ValidationFailed(
            "the episode cannot end before it started",
            [FieldError(("body", "ended_on"), "must not be before the episode's started_on", "date_order")],
        )
    if episode.ended_on is not None and episode.ended_on != ended_on:
        raise Conflict("the episode has already ended; start a new episode instead")
    episode.ended_on = ended_on
    episode.ends_at = local_midnight(ended_on + timedelta(days=1), episode.time_zone)
    session.flush()
    _audit(session, "billing.episode.ended", episode, actor, {})
    return episode


def record_setup(
    session: Session, organization_id: str, episode_id: str, setup: SetupIn, *, actor: Actor | str
) -> Episode:
    """Set-up and education is once per episode (99453): recorded once, never overwritten."""
    episode = get_episode(session, organization_id, episode_id, lock=True)
    if episode.setup_on is not None:
        raise Conflict("the episode's setup/education is already recorded")
    if setup.on < episode.started_on or (episode.ended_on is not None and setup.on > episode.ended_on):
        raise ValidationFailed(
            "the setup date is outside the episode",
            [FieldError(("body", "on"), "must fall within the episode's dates", "date_range")],
        )
    episode.setup_on = setup.on
    episode.setup_staff = setup.staff
    session.flush()
    _audit(session, "billing.episode.setup_recorded", episode, actor, {})
    return episode


def _audit(session: Session, action: str, episode: Episode, actor: Actor | str, detail: dict[str, str]) -> None:
    record(
        session,
        action=action,
        outcome=Outcome.success,
        actor=actor,
        organization_id=episode.organization_id,
        practice_id=episode.practice_id,
        resource_type="BillingEpisode",
        resource_ids=[episode.id, episode.patient_id],
        detail=detail,
    )
