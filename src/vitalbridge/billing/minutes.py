"""Care-management time → 99470 / 99457 / 99458 per calendar month, 99091 per 30 days (SPEC §13).

Every logged minute counts toward exactly one pool, so no minute is billed twice:

- **treatment management** (99470, 99457, 99458): clinical staff's and physicians' time, except
- **interpretation** (99091): a physician's or QHP's time logged as ``data_interpretation``.

Whole minutes count (seconds are summed first, then floored). A correction replaces the entry it
corrects; the corrected entry stays stored (the log is append-only) but stops counting.
Pure functions; see docs/billing.md "Time codes" for the sources of each threshold.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from vitalbridge.billing.days import Period, Shortfall
from vitalbridge.billing.rules import Code, CodeRule, Credential, PeriodKind, RuleSet, rules_for


class Activity(enum.StrEnum):
    data_review = "data_review"  # reviewing transmitted readings and alerts
    communication = "communication"  # talking with the patient or caregiver
    care_coordination = "care_coordination"  # with other clinicians, pharmacies, services
    education = "education"  # teaching the patient about the device or condition
    data_interpretation = "data_interpretation"  # a physician/QHP interpreting the data (99091)
    other = "other"


class Modality(enum.StrEnum):
    """How an interactive communication happened. Whether ``message`` is real time is the
    practice's MAC's call (sources disagree): VB_BILLING_MESSAGES_ARE_INTERACTIVE."""

    call = "call"
    video = "video"
    in_person = "in_person"
    message = "message"


REAL_TIME = frozenset({Modality.call, Modality.video, Modality.in_person})


@dataclass(frozen=True)
class Entry:
    """A time-log entry as the rules see it."""

    id: str
    started_at: datetime
    seconds: int
    credential: Credential
    activity: Activity
    interactive: bool = False
    modality: Modality | None = None
    corrects_id: str | None = None


def effective_entries(entries: Iterable[Entry]) -> list[Entry]:
    """Entries that count: every entry not corrected by a later one (a correction of 0 s voids)."""
    entries = list(entries)
    corrected = {e.corrects_id for e in entries if e.corrects_id}
    return [e for e in entries if e.id not in corrected and e.seconds > 0]


def counts_as_interaction(entry: Entry, *, messages_count: bool) -> bool:
    if not entry.interactive or entry.modality is None:
        return False
    return entry.modality in REAL_TIME or (messages_count and entry.modality is Modality.message)


def is_interpretation(entry: Entry) -> bool:
    return entry.credential is Credential.physician_qhp and entry.activity is Activity.data_interpretation


@dataclass(frozen=True)
class Charge:
    code: Code
    units: int


@dataclass(frozen=True)
class MonthResult:
    month: str  # YYYY-MM
    rule_set: str
    minutes: int
    interactions: int
    entry_ids: tuple[str, ...]  # the evidence: entries that counted
    charges: tuple[Charge, ...]
    missing: tuple[Shortfall, ...] = field(default_factory=tuple)


def _base_codes(rule_set: RuleSet) -> list[CodeRule]:
    found = [
        r
        for r in rule_set.rules.values()
        if r.period is PeriodKind.calendar_month and r.addon_to is None and r.min_minutes is not None
    ]
    return sorted(found, key=lambda r: r.min_minutes or 0, reverse=True)


def month_charges(minutes: int, interactions: int, rule_set: RuleSet) -> tuple[Charge, ...]:
    """The month's treatment-management codes: the largest base code whose threshold is met (the
    others are excluded with it), then its add-on units for each further full ``unit_minutes``."""
    if interactions < 1:
        return ()
    base = next((r for r in _base_codes(rule_set) if minutes >= (r.min_minutes or 0)), None)
    if base is None:
        return ()
    charges = [Charge(base.code, 1)]
    for addon in rule_set.rules.values():
        if addon.addon_to is base.code and addon.unit_minutes and base.min_minutes is not None:
            units = (minutes - base.min_minutes) // addon.unit_minutes
            if units > 0:
                charges.append(Charge(addon.code, units))
    return tuple(charges)


def _month_missing(
    minutes: int, interactions: int, charges: Sequence[Charge], rule_set: RuleSet, *, month_end: date, open_: bool
) -> list[Shortfall]:
    """The nearest goal of the month: the next add-on unit, the next base threshold, an interaction."""
    billed = {c.code for c in charges}
    bases = _base_codes(rule_set)  # largest threshold first
    if Code.management_20 in billed:
        addon = rule_set.get(Code.management_addon)
        base_min = rule_set.rules[Code.management_20].min_minutes or 0
        if addon is None or not addon.unit_minutes:
            return []
        need = addon.unit_minutes - (minutes - base_min) % addon.unit_minutes
        return [Shortfall(Code.management_addon, need, "minutes", month_end, open_)]
    missing: list[Shortfall] = []
    for rule in reversed(bases):  # smallest threshold first
        threshold = rule.min_minutes or 0
        if rule.code not in billed and minutes < threshold:
            missing.append(Shortfall(rule.code, threshold - minutes, "minutes", month_end, open_))
            break
    if interactions < 1 and bases:
        met = next((r for r in bases if minutes >= (r.min_minutes or 0)), bases[-1])
        missing.append(Shortfall(met.code, 1, "interactive communication", month_end, open_))
    return missing


def judge_month(
    month: str,
    entries: Iterable[Entry],
    *,
    month_end: date,
    as_of: date,
    messages_count: bool = False,
) -> MonthResult:
    """Treatment-management codes of one calendar month from the (already month-filtered) entries."""
    counted = [e for e in effective_entries(entries) if not is_interpretation(e)]
    rule_set = rules_for(month_end)
    minutes = sum(e.seconds for e in counted) // 60
    interactions = sum(1 for e in counted if counts_as_interaction(e, messages_count=messages_count))
    charges = month_charges(minutes, interactions, rule_set)
    missing = _month_missing(minutes, interactions, charges, rule_set, month_end=month_end, open_=month_end >= as_of)
    ids = tuple(e.id for e in sorted(counted, key=lambda e: (e.started_at, e.id)))
    return MonthResult(month, rule_set.name, minutes, interactions, ids, charges, tuple(missing))


@dataclass(frozen=True)
class InterpretationResult:
    period: Period
    minutes: int
    entry_ids: tuple[str, ...]
    charge: Charge | None
    missing: Shortfall | None


def judge_interpretation(
    period: Period, entries: Iterable[Entry], tz: ZoneInfo, *, as_of: date
) -> InterpretationResult:
    """99091: ≥ 30 minutes of a physician's/QHP's interpretation in one 30-day device period."""
    counted = [
        e
        for e in effective_entries(entries)
        if is_interpretation(e) and period.contains(e.started_at.astimezone(tz).date())
    ]
    minutes = sum(e.seconds for e in counted) // 60
    rule = rules_for(period.end).get(Code.interpretation)
    threshold = rule.min_minutes if rule and rule.min_minutes is not None else None
    charge = Charge(Code.interpretation, 1) if threshold is not None and minutes >= threshold else None
    missing = None
    if threshold is not None and charge is None and minutes > 0:
        missing = Shortfall(
            Code.interpretation, threshold - minutes, "physician minutes", period.end, period.end >= as_of
        )
    ids = tuple(e.id for e in sorted(counted, key=lambda e: (e.started_at, e.id)))
    return InterpretationResult(period, minutes, ids, charge, missing)
