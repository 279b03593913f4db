"""CPT rules for RPM as dated data (SPEC §13): a new year's rule is a new table, not new code.

Each ``RuleSet`` holds the codes in force over ``[effective_from, effective_to]``; a charge is
judged by the set in force on its date of service (``rules_for``). The CY2025 set has no 99445
or 99470 — those codes were created by the CY2026 Physician Fee Schedule final rule (FR Doc
2025-19787, 90 FR 49266, effective 2026-01-01) — so a 30-day period that closes on 31 Dec 2025
with ten days of data bills nothing, while one closing on 2 Jan 2026 bills 99445.

Sources per code are in docs/billing.md; thresholds below are the published values, and the
one open question (may 99453 follow 2 days of data under CY2026, or
still only 16?) is a setting, ``VB_BILLING_SETUP_MIN_DAYS``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date


class Code(enum.StrEnum):
    """CPT codes for remote physiologic monitoring, with what each pays for."""

    setup = "99453"  # set-up and patient education on the device, once per episode of care
    supply = "99454"  # device supply with data transmission, 16-30 days in a 30-day period
    supply_short = "99445"  # device supply, 2-15 days in a 30-day period (CY2026 on)
    management_10 = "99470"  # treatment management, first 10 minutes of a calendar month (CY2026 on)
    management_20 = "99457"  # treatment management, first 20 minutes of a calendar month
    management_addon = "99458"  # each additional 20 minutes, add-on to 99457
    interpretation = "99091"  # physician/QHP collection and interpretation, 30 minutes per 30 days


class PeriodKind(enum.StrEnum):
    """The span a code's threshold is counted over."""

    episode = "episode"  # once per enrollment episode
    rolling_30_days = "rolling_30_days"  # 30-day device periods from the first qualifying reading
    calendar_month = "calendar_month"  # the calendar month of the patient's time zone


class Credential(enum.StrEnum):
    """Who logged time: it decides which codes the minutes can count toward."""

    clinical_staff = "clinical_staff"  # nurses, medical assistants under general supervision
    physician_qhp = "physician_qhp"  # physician or other qualified health care professional


@dataclass(frozen=True)
class CodeRule:
    """One code's threshold. ``None`` means "no bound of this kind"."""

    code: Code
    period: PeriodKind
    min_days: int | None = None  # distinct days with device-transmitted data in the period
    max_days: int | None = None
    min_minutes: int | None = None  # logged minutes in the period
    unit_minutes: int | None = None  # add-on codes: minutes per further unit
    requires_interaction: bool = False  # ≥ 1 interactive communication in the period
    credentials: frozenset[Credential] = frozenset(Credential)
    excludes: frozenset[Code] = frozenset()  # never billed with these in the same period
    addon_to: Code | None = None


@dataclass(frozen=True)
class RuleSet:
    name: str
    effective_from: date
    effective_to: date | None
    rules: dict[Code, CodeRule] = field(default_factory=dict)

    def covers(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)

    def get(self, code: Code) -> CodeRule | None:
        return self.rules.get(code)


def _set(name: str, start: date, end: date | None, *rules: CodeRule) -> RuleSet:
    return RuleSet(name, start, end, {r.code: r for r in rules})


_PHYSICIAN = frozenset({Credential.physician_qhp})

# 99453 is once per episode; the days it waits for are VB_BILLING_SETUP_MIN_DAYS (default 16).
_SETUP = CodeRule(Code.setup, PeriodKind.episode)
_SUPPLY_2025 = CodeRule(Code.supply, PeriodKind.rolling_30_days, min_days=16, max_days=30)
_MGMT20_2025 = CodeRule(Code.management_20, PeriodKind.calendar_month, min_minutes=20, requires_interaction=True)
_ADDON = CodeRule(
    Code.management_addon,
    PeriodKind.calendar_month,
    min_minutes=40,
    unit_minutes=20,
    requires_interaction=True,
    addon_to=Code.management_20,
)
_INTERPRETATION = CodeRule(Code.interpretation, PeriodKind.rolling_30_days, min_minutes=30, credentials=_PHYSICIAN)

CY2025 = _set(
    "CY2025",
    date(2025, 1, 1),
    date(2025, 12, 31),
    _SETUP,
    _SUPPLY_2025,
    _MGMT20_2025,
    _ADDON,
    _INTERPRETATION,
)

CY2026 = _set(
    "CY2026",
    date(2026, 1, 1),
    None,
    _SETUP,
    CodeRule(
        Code.supply, PeriodKind.rolling_30_days, min_days=16, max_days=30, excludes=frozenset({Code.supply_short})
    ),
    CodeRule(Code.supply_short, PeriodKind.rolling_30_days, min_days=2, max_days=15, excludes=frozenset({Code.supply})),
    CodeRule(
        Code.management_10,
        PeriodKind.calendar_month,
        min_minutes=10,
        requires_interaction=True,
        excludes=frozenset({Code.management_20}),
    ),
    CodeRule(
        Code.management_20,
        PeriodKind.calendar_month,
        min_minutes=20,
        requires_interaction=True,
        excludes=frozenset({Code.management_10}),
    ),
    _ADDON,
    _INTERPRETATION,
)

RULE_SETS: tuple[RuleSet, ...] = (CY2025, CY2026)


class NoRules(LookupError):
    """No rule set covers the date (before CY2025: the hub does not bill earlier years)."""


def rules_for(day: date, rule_sets: tuple[RuleSet, ...] = RULE_SETS) -> RuleSet:
    for rule_set in rule_sets:
        if rule_set.covers(day):
            return rule_set
    raise NoRules(f"no billing rules in force on {day.isoformat()}")
