"""The month's billing report of one practice (SPEC §13), computed set-based.

Three queries for the whole practice, whatever its size: the episodes in scope (with the
patients' chart identifiers and each one's first qualifying reading), the distinct local days
with device readings in the window around the month, and the time entries that count.
Everything after that is arithmetic in ``days`` and ``minutes``; there is no query per patient.

What belongs to a month: the device periods whose last day (the date of service) falls in it,
the calendar month's treatment-management time, and the 99091 periods ending in it. While the
month is still running, the period in progress is also shown (its charges are billed in the
month it ends) so staff see what is missing and by when.
"""

from __future__ import annotations

import calendar
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Date, and_, cast, exists, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from vitalbridge.billing.days import PeriodResult, Shortfall, device_periods, judge_period
from vitalbridge.billing.minutes import Entry, judge_interpretation, judge_month
from vitalbridge.billing.models import Episode, MonitoringProgram, PractitionerChange, TimeEntry
from vitalbridge.billing.practitioners import practitioner_on
from vitalbridge.billing.rules import Code, rules_for
from vitalbridge.devices.models import Reading
from vitalbridge.devices.readings import ReadingOrigin
from vitalbridge.patients.models import Patient
from vitalbridge.tenancy.models import Practice

# Readings and entries of periods that overlap the month: 30 days either side, plus a day for
# the widest UTC offsets.
_MARGIN = timedelta(days=31)


@dataclass(frozen=True)
class Policy:
    """The configurable readings of the rules (settings; docs/billing.md)."""

    setup_min_days: int = 16
    messages_are_interactive: bool = False


def month_bounds(month: str) -> tuple[date, date]:
    year, mon = (int(p) for p in month.split("-"))
    return date(year, mon, 1), date(year, mon, calendar.monthrange(year, mon)[1])


def _utc(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _in_episode(ts: InstrumentedAttribute[datetime]) -> ColumnElement[bool]:
    return and_(ts >= Episode.starts_at, or_(Episode.ends_at.is_(None), ts < Episode.ends_at))


def _device_reading_of_episode() -> ColumnElement[bool]:
    return and_(
        Reading.patient_id == Episode.patient_id,
        Reading.origin == ReadingOrigin.device,
        _in_episode(Reading.measured_at),
    )


def _sqlite_local_day(stored: str | None, zone: str) -> str | None:
    """``UTCDateTime`` text as stored by SQLite → the local calendar day in ``zone``."""
    if stored is None:
        return None
    return datetime.fromisoformat(stored).replace(tzinfo=UTC).astimezone(ZoneInfo(zone)).date().isoformat()


def _register_local_day(session: Session) -> None:
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    raw.create_function("vb_local_day", 2, _sqlite_local_day, deterministic=True)


def _load(session: Session, practice_id: str, first: date, last: date) -> dict[str, Any]:
    scope = and_(
        Episode.practice_id == practice_id,
        Episode.program == MonitoringProgram.rpm,
        Episode.started_on <= last,
        or_(Episode.ended_on.is_(None), Episode.ended_on >= first),
    )
    # The episode's first qualifying reading, as a correlated subquery: one index seek on
    # (patient_id, measured_at) per episode instead of aggregating its whole history.
    first_reading = (
        select(func.min(Reading.measured_at)).where(_device_reading_of_episode()).correlate(Episode).scalar_subquery()
    )
    episodes = session.execute(
        select(Episode, Patient.mrn, Patient.family_name, Patient.given_name, first_reading)
        .join(Patient, Patient.id == Episode.patient_id)
        .where(scope)
        .order_by(Patient.family_name, Patient.given_name, Episode.patient_id, Episode.started_on)
    ).all()
    firsts: dict[str, datetime] = {row[0].id: row[4] for row in episodes if row[4] is not None}
    lo, hi = _utc(first) - _MARGIN, _utc(last) + _MARGIN
    window = and_(scope, Reading.measured_at >= lo, Reading.measured_at < hi)
    days: dict[str, set[date]] = defaultdict(set)
    # The zone conversion runs in the database, so only one row per episode and local day
    # comes back: PostgreSQL has time zones built in, SQLite gets them as a function.
    if session.get_bind().dialect.name == "postgresql":
        local_day: ColumnElement[Any] = cast(func.timezone(Episode.time_zone, Reading.measured_at), Date)
    else:
        _register_local_day(session)
        local_day = func.vb_local_day(Reading.measured_at, Episode.time_zone)
    q = select(Episode.id, local_day).join(Reading, _device_reading_of_episode()).where(window).distinct()
    for eid, day in session.execute(q):
        days[eid].add(day if isinstance(day, date) else date.fromisoformat(day))
    corrector = aliased(TimeEntry)
    entries: dict[str, list[Entry]] = defaultdict(list)
    rows: dict[str, TimeEntry] = {}
    q2 = (
        select(Episode.id, TimeEntry)
        .join(TimeEntry, and_(TimeEntry.patient_id == Episode.patient_id, _in_episode(TimeEntry.started_at)))
        .where(
            scope,
            TimeEntry.started_at >= lo,
            TimeEntry.started_at < hi,
            TimeEntry.seconds > 0,
            ~exists(select(corrector.id).where(corrector.corrects_id == TimeEntry.id)),
        )
    )
    for eid, t in session.execute(q2):
        rows[t.id] = t
        entries[eid].append(
            Entry(t.id, t.started_at, t.seconds, t.credential, t.activity, t.interactive, t.modality, t.corrects_id)
        )
    changes: dict[str, list[PractitionerChange]] = defaultdict(list)
    for change in session.scalars(
        select(PractitionerChange).join(Episode, Episode.id == PractitionerChange.episode_id).where(scope)
    ):
        changes[change.episode_id].append(change)
    return {
        "episodes": episodes,
        "firsts": firsts,
        "days": days,
        "entries": entries,
        "rows": rows,
        "changes": changes,
    }


def _shortfall(s: Shortfall) -> dict[str, Any]:
    return {
        "code": s.code.value,
        "need": s.need,
        "unit": s.unit,
        "by": s.by.isoformat() if s.by else None,
        "open": s.open,
        "text": s.text,
    }


def _period_json(r: PeriodResult, *, in_month: bool) -> dict[str, Any]:
    return {
        "number": r.period.number,
        "start": r.period.start.isoformat(),
        "end": r.period.end.isoformat(),
        "date_of_service": r.period.end.isoformat(),
        "billed_in_this_month": in_month,
        "complete": r.complete,
        "rule_set": r.rule_set,
        "days": len(r.days),
        "qualifying_days": [d.isoformat() for d in r.days],
        "code": r.code.value if r.code else None,
    }


def _entry_json(t: TimeEntry) -> dict[str, Any]:
    return {
        "id": t.id,
        "staff": t.staff,
        "credential": t.credential.value,
        "started_at": t.started_at.isoformat(),
        "minutes": round(t.seconds / 60, 2),
        "activity": t.activity.value,
        "interactive": t.interactive,
        "modality": t.modality.value if t.modality else None,
        "corrects_id": t.corrects_id,
    }


def _charge(code: Code, units: int, dos: date, final: bool, basis: str, rule_set: str) -> dict[str, Any]:
    return {
        "code": code.value,
        "units": units,
        "date_of_service": dos.isoformat(),
        "final": final,
        "basis": basis,
        "rule_set": rule_set,
    }


def _patient_row(
    episode: Episode,
    chart: tuple[str | None, str, str],
    first_at: datetime | None,
    days: set[date],
    entries: list[Entry],
    rows: dict[str, TimeEntry],
    *,
    month: str,
    first: date,
    last: date,
    as_of: datetime,
    policy: Policy,
    changes: Sequence[PractitionerChange] = (),
) -> dict[str, Any]:
    tz = ZoneInfo(episode.time_zone)
    today = as_of.astimezone(tz).date()
    month_open = today <= last
    charges: list[dict[str, Any]] = []
    missing: list[Shortfall] = []
    periods_json: list[dict[str, Any]] = []
    interpretation_ids: list[str] = []
    first_day = first_at.astimezone(tz).date() if first_at else None
    if first_day is None:
        supply = Code.supply_short if rules_for(max(first, min(today, last))).get(Code.supply_short) else Code.supply
        rule = rules_for(max(first, min(today, last))).get(supply)
        need = rule.min_days if rule and rule.min_days else 2
        missing.append(Shortfall(supply, need, "days", None, open=month_open))
    else:
        for period in device_periods(first_day, until=last, episode_end=episode.ended_on):
            in_month = first <= period.end <= last
            running = period.start <= last < period.end and month_open
            if not (in_month or running):
                continue
            result = judge_period(period, days, as_of=today)
            periods_json.append(_period_json(result, in_month=in_month))
            if not result.complete:
                missing.extend(result.missing)
            if not in_month:
                continue
            basis = f"device period {period.number} ({period.start.isoformat()}..{period.end.isoformat()})"
            if result.code is not None:
                charges.append(_charge(result.code, 1, period.end, result.complete, basis, result.rule_set))
            if period.number == 1:
                charges_setup, setup_missing = _setup(episode, result, policy, basis)
                charges.extend(charges_setup)
                missing.extend(setup_missing)
            interp = judge_interpretation(period, entries, tz, as_of=today)
            periods_json[-1]["interpretation_minutes"] = interp.minutes
            periods_json[-1]["interpretation_entry_ids"] = list(interp.entry_ids)
            interpretation_ids.extend(interp.entry_ids)
            if interp.charge is not None:
                charges.append(
                    _charge(Code.interpretation, 1, period.end, result.complete, basis, rules_for(period.end).name)
                )
            elif interp.missing is not None and interp.missing.open:
                missing.append(interp.missing)
    in_month_entries = [e for e in entries if first <= e.started_at.astimezone(tz).date() <= last]
    mres = judge_month(
        month,
        in_month_entries,
        month_end=last,
        as_of=today,
        messages_count=policy.messages_are_interactive,
    )
    for c in mres.charges:
        charges.append(_charge(c.code, c.units, last, not month_open, f"calendar month {month}", mres.rule_set))
    missing.extend(mres.missing)
    for charge in charges:
        dos = date.fromisoformat(charge["date_of_service"])
        charge["billing_practitioner_id"] = practitioner_on(episode, changes, dos)
    shown = sorted({*mres.entry_ids, *interpretation_ids}, key=lambda i: (rows[i].started_at, i))
    mrn, family, given = chart
    return {
        "patient_id": episode.patient_id,
        "mrn": mrn,
        "family_name": family,
        "given_name": given,
        "episode_id": episode.id,
        "time_zone": episode.time_zone,
        "episode_started_on": episode.started_on.isoformat(),
        "episode_ended_on": episode.ended_on.isoformat() if episode.ended_on else None,
        "first_qualifying_day": first_day.isoformat() if first_day else None,
        "ordering_practitioner_id": episode.ordering_practitioner_id,
        "billing_practitioner_id": episode.billing_practitioner_id,
        "condition_code": episode.condition_code,
        "charges": charges,
        "device_periods": periods_json,
        "time": {
            "month": month,
            "rule_set": mres.rule_set,
            "minutes": mres.minutes,
            "interactions": mres.interactions,
            "entry_ids": list(mres.entry_ids),
        },
        "time_entries": [_entry_json(rows[i]) for i in shown],
        "missing": [_shortfall(s) for s in missing],
    }


def _setup(
    episode: Episode, result: PeriodResult, policy: Policy, basis: str
) -> tuple[list[dict[str, Any]], list[Shortfall]]:
    """99453 once per episode, with the first device period (docs/billing.md "Setup")."""
    rule_set = rules_for(result.period.end)
    # Without 99445 (CY2025) setup can only follow the 16-day threshold.
    need_days = policy.setup_min_days if rule_set.get(Code.supply_short) else 16
    if episode.setup_on is None or episode.setup_on > result.period.end:
        return [], [Shortfall(Code.setup, 1, "setup date", None, open=not result.complete)]
    if len(result.days) < need_days:
        return [], [
            Shortfall(Code.setup, need_days - len(result.days), "days", result.period.end, open=not result.complete)
        ]
    return [_charge(Code.setup, 1, result.period.end, result.complete, basis, rule_set.name)], []


def compute_report(
    session: Session, practice: Practice, month: str, *, as_of: datetime, policy: Policy
) -> dict[str, Any]:
    """The practice's report for ``month`` (YYYY-MM) as it stands at ``as_of``."""
    first, last = month_bounds(month)
    rules_for(last)  # NoRules for months before CY2025: the caller turns it into a 422
    loaded = _load(session, practice.id, first, last)
    patients = [
        _patient_row(
            episode,
            (mrn, family, given),
            loaded["firsts"].get(episode.id),
            loaded["days"].get(episode.id, set()),
            loaded["entries"].get(episode.id, []),
            loaded["rows"],
            month=month,
            first=first,
            last=last,
            as_of=as_of,
            policy=policy,
            changes=loaded["changes"].get(episode.id, ()),
        )
        for episode, mrn, family, given, _first in loaded["episodes"]
    ]
    totals: dict[str, int] = defaultdict(int)
    for row in patients:
        for c in row["charges"]:
            totals[c["code"]] += c["units"]
    return {
        "practice_id": practice.id,
        "practice_code": practice.practice_code,
        "month": month,
        "as_of": as_of.astimezone(UTC).isoformat(),
        "policy": {
            "setup_min_days": policy.setup_min_days,
            "messages_are_interactive": policy.messages_are_interactive,
        },
        "totals": dict(sorted(totals.items())),
        "patients": patients,
    }


def episode_periods(session: Session, episode: Episode, *, as_of: datetime) -> list[dict[str, Any]]:
    """Every 30-day device period of one episode up to ``as_of``: the per-period view of the
    device codes (what each period earned, on which days), oldest first."""
    tz = ZoneInfo(episode.time_zone)
    today = as_of.astimezone(tz).date()
    instants = session.scalars(
        select(Reading.measured_at)
        .join(Episode, Episode.id == episode.id)
        .where(_device_reading_of_episode(), Reading.measured_at <= as_of)
    ).all()
    days = {t.astimezone(tz).date() for t in instants}
    if not days:
        return []
    out = []
    for period in device_periods(min(days), until=today, episode_end=episode.ended_on):
        result = judge_period(period, days, as_of=today)
        row = _period_json(result, in_month=False)
        del row["billed_in_this_month"]
        row["billed_in_month"] = period.end.strftime("%Y-%m")
        row["missing"] = [_shortfall(s) for s in result.missing]
        out.append(row)
    return out


def rows_hash(rows: Iterable[dict[str, Any]]) -> str:
    """A digest of the patient rows only: ``as_of`` differs on every run and means nothing."""
    canonical = json.dumps(list(rows), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
