"""Qualifying days and 30-day device periods (SPEC §13; docs/billing.md "Device codes").

A qualifying day is a calendar day, in the patient's time zone, with at least one
device-transmitted reading; manual entries never count and several devices on one day are one
day. Device periods are rolling 30-day windows from the episode's first qualifying day, not
calendar months; each is judged by the rule set in force on its last day (its date of service).

Pure functions on dates: the database layer hands in instants or local dates, nothing here
queries or knows a framework.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from vitalbridge.billing.rules import Code, RuleSet, rules_for

PERIOD_DAYS = 30


def local_days(instants: Iterable[datetime], tz: ZoneInfo) -> set[date]:
    """The distinct local calendar days of these aware instants (DST handled by the zone)."""
    return {t.astimezone(tz).date() for t in instants}


@dataclass(frozen=True)
class Period:
    number: int  # 1 for the episode's first 30 days
    start: date
    end: date  # inclusive; earlier than start + 29 when the episode ended inside it

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


def device_periods(first_day: date, *, until: date, episode_end: date | None = None) -> list[Period]:
    """Consecutive 30-day periods from ``first_day`` that start on or before ``until``."""
    periods: list[Period] = []
    last = until if episode_end is None else min(until, episode_end)
    start = first_day
    n = 1
    while start <= last:
        end = start + timedelta(days=PERIOD_DAYS - 1)
        if episode_end is not None and episode_end < end:
            end = episode_end
        periods.append(Period(n, start, end))
        start += timedelta(days=PERIOD_DAYS)
        n += 1
    return periods


@dataclass(frozen=True)
class Shortfall:
    """What a code still needs: ``need`` more ``unit`` by ``by`` (``open`` = still reachable)."""

    code: Code
    need: int
    unit: str  # "days", "minutes", "physician minutes", "interactive communication", "setup date"
    by: date | None
    open: bool

    @property
    def text(self) -> str:
        amount = "an interactive communication" if self.unit == "interactive communication" else None
        if self.unit == "setup date":
            amount = "the setup/education date recorded"
        if amount is None:
            word = self.unit[:-1] if self.need == 1 and self.unit.endswith("s") else self.unit
            amount = f"{self.need} more {word}"
        when = f" by {self.by.day} {self.by:%b}" if self.by and self.open else ""
        tail = "" if self.open else " (not reached)"
        return f"{amount}{when} for {self.code.value}{tail}"


@dataclass(frozen=True)
class PeriodResult:
    period: Period
    rule_set: str
    days: tuple[date, ...]  # the evidence: every qualifying day in the period
    complete: bool  # the period's last day is before the as-of day
    code: Code | None  # 99454, 99445 or nothing — never both
    missing: tuple[Shortfall, ...] = field(default_factory=tuple)


def _window(code: Code, rule_set: RuleSet) -> tuple[int, int] | None:
    rule = rule_set.get(code)
    if rule is None or rule.min_days is None:
        return None
    return rule.min_days, rule.max_days or PERIOD_DAYS


def supply_code(day_count: int, rule_set: RuleSet) -> Code | None:
    """99454 for 16-30 days, else 99445 for 2-15 where the rule set has it; one code at most.

    The longer code is tried first and every code lists the other in ``excludes``, so one
    period can never yield both (tests/billing/test_properties.py).
    """
    for code in (Code.supply, Code.supply_short):
        window = _window(code, rule_set)
        if window and window[0] <= day_count <= window[1]:
            return code
    return None


def judge_period(period: Period, days: Iterable[date], *, as_of: date) -> PeriodResult:
    """The supply code a period earns, the days behind it and, while it runs, what it still needs."""
    rule_set = rules_for(period.end)
    in_period = tuple(sorted(d for d in set(days) if period.contains(d)))
    count = len(in_period)
    complete = period.end < as_of
    code = supply_code(count, rule_set)
    missing: list[Shortfall] = []
    # Days still available: the rest of the period from the as-of day (today counts if it has no reading yet).
    first_left = max(as_of, period.start)
    left = 0 if complete else (period.end - first_left).days + 1 - (1 if first_left in in_period else 0)
    for target in (Code.supply_short, Code.supply):
        window = _window(target, rule_set)
        if window is None or count >= window[0]:
            continue
        need = window[0] - count
        missing.append(Shortfall(target, need, "days", period.end, open=not complete and need <= left))
        break  # the nearest threshold is the useful one; the next is implied
    return PeriodResult(period, rule_set.name, in_period, complete, code, tuple(missing))
