"""``/api/v1/billing/…`` (SPEC §13): episodes, the time log, monthly reports.

Every route is scoped to the caller's organization (another tenant's objects answer 404),
declares its roles, and is written to the audit trail as PHI access. Malformed requests answer
with the hub's problem body naming field and rule, never the submitted value.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute

from vitalbridge.api.actors import actor_of
from vitalbridge.api.deps import HubDep, SessionDep, require_role
from vitalbridge.api.types import MAX_OFFSET, REF_PATTERN
from vitalbridge.billing import episodes, months, practitioners, report, timelog
from vitalbridge.billing.episodes import local_midnight
from vitalbridge.billing.report import month_bounds
from vitalbridge.billing.schemas import (
    MONTH_PATTERN,
    CorrectionIn,
    EpisodeEndIn,
    EpisodeIn,
    EpisodeOut,
    PractitionerChangeIn,
    PractitionerChangeOut,
    ReportOut,
    ReportVersionOut,
    SetupUpdateIn,
    TimeEntryIn,
    TimeEntryOut,
)
from vitalbridge.db.base import utcnow
from vitalbridge.errors import FieldError, ValidationFailed
from vitalbridge.tenancy.models import Role
from vitalbridge.tenancy.service import Principal, get_practice


class ProblemRoute(APIRoute):
    """Request validation errors as the hub's problem body, without pydantic's ``input`` echo."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = [
                    FieldError(tuple(e.get("loc", ())), str(e.get("msg", "invalid")), str(e.get("type", "value_error")))
                    for e in exc.errors()
                ]
                raise ValidationFailed("the request has invalid fields", errors) from None

        return route


router = APIRouter(prefix="/api/v1/billing", tags=["billing"], route_class=ProblemRoute)

CareDep = Annotated[Principal, Depends(require_role(Role.clinician, Role.billing, phi=True))]
BillingDep = Annotated[Principal, Depends(require_role(Role.billing, phi=True))]
Month = Annotated[str, Path(pattern=MONTH_PATTERN, description="YYYY-MM")]
PracticeRef = Annotated[str, Path(pattern=REF_PATTERN, description="practice id or practice code")]


@router.post("/episodes/", status_code=201, response_model=EpisodeOut)
def create_episode(body: EpisodeIn, session: SessionDep, principal: CareDep) -> EpisodeOut:
    """Enroll a patient in RPM or RTM. 409 when any other episode of the patient overlaps."""
    return EpisodeOut.of(episodes.enroll(session, principal.organization_id, body, actor=actor_of(principal)))


@router.get("/episodes/", response_model=list[EpisodeOut])
def list_episodes(
    session: SessionDep,
    principal: CareDep,
    patient_id: Annotated[str | None, Query(pattern=REF_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[EpisodeOut]:
    rows = episodes.list_episodes(session, principal.organization_id, patient_id=patient_id, limit=limit, offset=offset)
    return [EpisodeOut.of(e) for e in rows]


@router.get("/episodes/{episode_id}", response_model=EpisodeOut)
def get_episode(episode_id: str, session: SessionDep, principal: CareDep) -> EpisodeOut:
    return EpisodeOut.of(episodes.get_episode(session, principal.organization_id, episode_id))


@router.get("/episodes/{episode_id}/periods", response_model=list[dict[str, Any]])
def episode_periods(episode_id: str, session: SessionDep, principal: CareDep) -> list[dict[str, Any]]:
    """The episode's 30-day device periods so far: days, qualifying dates, code, what is missing."""
    episode = episodes.get_episode(session, principal.organization_id, episode_id)
    return report.episode_periods(session, episode, as_of=utcnow())


@router.post("/episodes/{episode_id}/end", response_model=EpisodeOut)
def end_episode(episode_id: str, body: EpisodeEndIn, session: SessionDep, principal: CareDep) -> EpisodeOut:
    episode = episodes.end_episode(
        session, principal.organization_id, episode_id, body.ended_on, actor=actor_of(principal)
    )
    return EpisodeOut.of(episode)


@router.post("/episodes/{episode_id}/billing-practitioner", response_model=PractitionerChangeOut)
def change_practitioner(
    episode_id: str, body: PractitionerChangeIn, session: SessionDep, principal: CareDep
) -> PractitionerChangeOut:
    """Bill the episode under another practitioner from its next device period on (one per period)."""
    change = practitioners.change_practitioner(
        session, principal.organization_id, episode_id, body.practitioner_id, now=utcnow(), actor=actor_of(principal)
    )
    return PractitionerChangeOut(practitioner_id=change.practitioner_id, effective_from=change.effective_from)


@router.post("/episodes/{episode_id}/setup", response_model=EpisodeOut)
def record_setup(episode_id: str, body: SetupUpdateIn, session: SessionDep, principal: CareDep) -> EpisodeOut:
    """Record the set-up and education visit (99453), once."""
    episode = episodes.record_setup(session, principal.organization_id, episode_id, body, actor=actor_of(principal))
    return EpisodeOut.of(episode)


@router.post("/time-entries/", status_code=201, response_model=TimeEntryOut)
def log_time(body: TimeEntryIn, session: SessionDep, principal: CareDep) -> TimeEntryOut:
    """Append care-management time. Entries are never changed: correct one with ``…/corrections``."""
    return TimeEntryOut.of(timelog.log_time(session, principal.organization_id, body, actor=actor_of(principal)))


@router.get("/time-entries/", response_model=list[TimeEntryOut])
def list_time(
    session: SessionDep,
    principal: CareDep,
    patient_id: Annotated[str | None, Query(pattern=REF_PATTERN)] = None,
    month: Annotated[str | None, Query(pattern=MONTH_PATTERN, description="YYYY-MM, in UTC±14 h margin")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[TimeEntryOut]:
    """Oldest first, corrected entries included (each names the entry that corrects it)."""
    since = until = None
    if month is not None:
        first, last = month_bounds(month)
        since = local_midnight(first, "Etc/GMT-14")
        until = local_midnight(last + timedelta(days=1), "Etc/GMT+12")
    rows = timelog.list_entries(
        session, principal.organization_id, patient_id=patient_id, since=since, until=until, limit=limit, offset=offset
    )
    return [TimeEntryOut.of(t, by) for t, by in rows]


@router.get("/time-entries/{entry_id}", response_model=TimeEntryOut)
def get_time(entry_id: str, session: SessionDep, principal: CareDep) -> TimeEntryOut:
    entry = timelog.get_entry(session, principal.organization_id, entry_id)
    return TimeEntryOut.of(entry, timelog.corrected_by(session, entry.id))


@router.post("/time-entries/{entry_id}/corrections", status_code=201, response_model=TimeEntryOut)
def correct_time(entry_id: str, body: CorrectionIn, session: SessionDep, principal: CareDep) -> TimeEntryOut:
    """Append a correction; the corrected entry stays stored and stops counting."""
    return TimeEntryOut.of(
        timelog.correct(session, principal.organization_id, entry_id, body, actor=actor_of(principal))
    )


@router.get(
    "/reports/{practice_id}/{month}",
    response_model=ReportOut,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def get_report(
    practice_id: PracticeRef,
    month: Month,
    session: SessionDep,
    hub: HubDep,
    principal: BillingDep,
    format: Annotated[Literal["json", "csv"], Query(description="csv: one line per charge")] = "json",
    version: Annotated[int | None, Query(ge=1, le=100_000, description="a stored version (closed months)")] = None,
) -> Any:
    """The month's report: live while open; once closed, the frozen version and its amendments."""
    practice = get_practice(session, principal.organization_id, practice_id)
    view = months.view_month(
        session, practice, month, now=utcnow(), policy=months.policy_of(hub.settings), version=version
    )
    if format == "csv":
        name = f"billing-{practice.practice_code}-{month}.csv"
        return PlainTextResponse(
            months.to_csv(view.report),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return ReportOut(
        practice_id=practice.id,
        month=month,
        status=view.status,
        report=view.report,
        versions=[_version(v) for v in view.versions],
        amendments=view.amendments,
    )


@router.post("/reports/{practice_id}/{month}/close", status_code=201, response_model=ReportVersionOut)
def close_month(
    practice_id: PracticeRef, month: Month, session: SessionDep, hub: HubDep, principal: BillingDep
) -> ReportVersionOut:
    """Freeze the month (after it ended everywhere). 409 when already closed."""
    practice = get_practice(session, principal.organization_id, practice_id)
    row = months.close_month(
        session, practice, month, now=utcnow(), policy=months.policy_of(hub.settings), actor=actor_of(principal)
    )
    return _version(row)


def _version(v: Any) -> ReportVersionOut:
    return ReportVersionOut(
        version=v.version,
        kind=v.kind.value,
        created_at=v.created_at,
        created_by=v.created_by,
        changed_patient_ids=list(v.changed_patient_ids),
        content_hash=v.content_hash,
    )
