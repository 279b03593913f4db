"""``vitalbridge billing …``: RPM billing from the command line (SPEC §13, docs/billing.md).

Reports print to stdout (JSON or CSV) and may carry patient names and MRNs: redirect them to a
file the practice controls. Errors and summaries go to stderr with ids and counts only.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vitalbridge.cli.common import hub_session, operator

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from vitalbridge.tenancy.models import Practice

billing = typer.Typer(
    help="RPM billing (CPT 99453-99091) — enrollment episodes, time log and monthly reports.", no_args_is_help=True
)

OrgOpt = Annotated[str, typer.Option("--org", help="Organization id or name.")]
PracticeOpt = Annotated[str, typer.Option("--practice", help="Practice id or practice code.")]
MonthOpt = Annotated[str, typer.Option("--month", help="Calendar month, YYYY-MM.")]


def _month(value: str) -> str:
    import re

    from vitalbridge.billing.schemas import MONTH_PATTERN

    if not re.match(MONTH_PATTERN, value):
        raise typer.BadParameter("use YYYY-MM, e.g. 2026-11", param_hint="--month")
    return value


def _when(value: str | None) -> datetime:
    from vitalbridge.db.base import utcnow

    if value is None:
        return utcnow()
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise typer.BadParameter("give a UTC offset", param_hint="--as-of")
    return when


def _practice(session: Session, org: str, practice: str) -> Practice:
    from vitalbridge.tenancy.service import get_organization, get_practice

    return get_practice(session, get_organization(session, org).id, practice)


def _body(path: Path, model: Any) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        # Field and rule only: the file's values may be PHI.
        for e in exc.errors(include_input=False, include_url=False):
            typer.echo(f"error: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        raise typer.BadParameter(f"cannot read the file: {exc.strerror}") from None


@billing.command("rules")
def rules_cmd() -> None:
    """Print the CPT rule sets the hub applies, with their effective dates."""
    from vitalbridge.billing.rules import RULE_SETS

    for rs in RULE_SETS:
        until = rs.effective_to.isoformat() if rs.effective_to else "…"
        typer.echo(f"{rs.name}  {rs.effective_from.isoformat()} → {until}")
        for rule in rs.rules.values():
            parts = [rule.code.value, rule.period.value]
            if rule.min_days is not None:
                parts.append(f"days {rule.min_days}-{rule.max_days}")
            if rule.min_minutes is not None:
                parts.append(f"minutes ≥ {rule.min_minutes}")
            if rule.unit_minutes:
                parts.append(f"+1 unit per {rule.unit_minutes} min")
            if rule.requires_interaction:
                parts.append("interactive communication")
            if rule.excludes:
                parts.append("never with " + ",".join(sorted(c.value for c in rule.excludes)))
            typer.echo("  " + "  ".join(parts))


@billing.command("enroll")
def enroll_cmd(
    org: OrgOpt,
    file: Annotated[Path, typer.Option("--file", help="Episode JSON, the body of POST /api/v1/billing/episodes/.")],
) -> None:
    """Enroll a patient in RPM or RTM (refused when another episode overlaps); prints the episode id."""
    from vitalbridge.billing import episodes
    from vitalbridge.billing.schemas import EpisodeIn
    from vitalbridge.tenancy.service import get_organization

    body = _body(file, EpisodeIn)
    with hub_session() as (_hub, session):
        episode = episodes.enroll(session, get_organization(session, org).id, body, actor=operator())
        typer.echo(episode.id)


@billing.command("end-episode")
def end_episode_cmd(
    org: OrgOpt,
    episode: Annotated[str, typer.Argument(help="Episode id.")],
    on: Annotated[str, typer.Option("--on", help="Last day of the episode, YYYY-MM-DD (patient's calendar).")],
) -> None:
    """End an enrollment episode."""
    from datetime import date

    from vitalbridge.billing import episodes
    from vitalbridge.tenancy.service import get_organization

    try:
        day = date.fromisoformat(on)
    except ValueError:
        raise typer.BadParameter("use YYYY-MM-DD", param_hint="--on") from None
    with hub_session() as (_hub, session):
        episodes.end_episode(session, get_organization(session, org).id, episode, day, actor=operator())
    typer.echo(f"ended {episode} on {day.isoformat()}", err=True)


@billing.command("change-practitioner")
def change_practitioner_cmd(
    org: OrgOpt,
    episode: Annotated[str, typer.Argument(help="Episode id.")],
    practitioner: Annotated[str, typer.Option("--practitioner", help="Provider id of the new billing practitioner.")],
) -> None:
    """Bill the episode under another practitioner from its next 30-day device period on."""
    from vitalbridge.billing.practitioners import change_practitioner
    from vitalbridge.db.base import utcnow
    from vitalbridge.tenancy.service import get_organization

    with hub_session() as (_hub, session):
        change = change_practitioner(
            session, get_organization(session, org).id, episode, practitioner, now=utcnow(), actor=operator()
        )
    typer.echo(f"billing practitioner changes on {change.effective_from.isoformat()}", err=True)


@billing.command("periods")
def periods_cmd(
    org: OrgOpt,
    episode: Annotated[str, typer.Argument(help="Episode id.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="As at this time (ISO 8601 with offset).")] = None,
) -> None:
    """The episode's 30-day device periods as JSON: days, qualifying dates, code, what is missing."""
    from vitalbridge.billing import episodes, report
    from vitalbridge.tenancy.service import get_organization

    with hub_session() as (_hub, session):
        row = episodes.get_episode(session, get_organization(session, org).id, episode)
        typer.echo(json.dumps(report.episode_periods(session, row, as_of=_when(as_of)), indent=2))


@billing.command("log-time")
def log_time_cmd(
    org: OrgOpt,
    file: Annotated[Path, typer.Option("--file", help="Entry JSON, the body of POST /api/v1/billing/time-entries/.")],
) -> None:
    """Append a care-management time entry; prints its id."""
    from vitalbridge.billing import timelog
    from vitalbridge.billing.schemas import TimeEntryIn
    from vitalbridge.tenancy.service import get_organization

    body = _body(file, TimeEntryIn)
    with hub_session() as (_hub, session):
        entry = timelog.log_time(session, get_organization(session, org).id, body, actor=operator())
        typer.echo(entry.id)


@billing.command("report")
def report_cmd(
    org: OrgOpt,
    practice: PracticeOpt,
    month: MonthOpt,
    format: Annotated[str, typer.Option("--format", help="json or csv (one line per charge).")] = "json",
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Compute as at this time (ISO 8601 with offset).")
    ] = None,
    version: Annotated[int | None, typer.Option("--version", help="A stored version of a closed month.")] = None,
) -> None:
    """The practice's month: live while open, the frozen version (and amendments) once closed."""
    from vitalbridge.billing import months

    if format not in ("json", "csv"):
        raise typer.BadParameter("json or csv", param_hint="--format")
    month = _month(month)
    when = _when(as_of)
    with hub_session() as (hub, session):
        row = _practice(session, org, practice)
        view = months.view_month(session, row, month, now=when, policy=months.policy_of(hub.settings), version=version)
        if format == "csv":
            typer.echo(months.to_csv(view.report), nl=False)
            return
        doc = {
            "practice_id": view.practice_id,
            "month": view.month,
            "status": view.status,
            "report": view.report,
            "versions": [
                {"version": v.version, "kind": v.kind.value, "created_at": v.created_at.isoformat()}
                for v in view.versions
            ],
            "amendments": view.amendments,
        }
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))


@billing.command("close")
def close_cmd(org: OrgOpt, practice: PracticeOpt, month: MonthOpt) -> None:
    """Freeze the month's report (version 1). Later changes become amendments, never edits."""
    from vitalbridge.billing import months
    from vitalbridge.db.base import utcnow

    month = _month(month)
    with hub_session() as (hub, session):
        row = _practice(session, org, practice)
        version = months.close_month(
            session, row, month, now=utcnow(), policy=months.policy_of(hub.settings), actor=operator()
        )
        typer.echo(f"closed {month}: version {version.version}, {len(version.content['patients'])} patients", err=True)


@billing.command("recompute")
def recompute_cmd(
    org: Annotated[str | None, typer.Option("--org", help="Only this organization (id or name).")] = None,
) -> None:
    """Recompute every closed month; store an amendment where charges or evidence changed.

    Run it from cron until the work engine schedules it (docs/billing.md)."""
    from vitalbridge.billing import months
    from vitalbridge.db.base import utcnow
    from vitalbridge.tenancy.service import get_organization

    with hub_session() as (hub, session):
        org_id = get_organization(session, org).id if org else None
        summary = months.recompute(
            session, now=utcnow(), policy=months.policy_of(hub.settings), actor=operator(), organization_id=org_id
        )
        for pid, month, version in summary.amended:
            typer.echo(f"amended practice {pid} {month}: version {version}", err=True)
        typer.echo(f"checked {summary.months} closed months, {len(summary.amended)} amended", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(billing, name="billing")
