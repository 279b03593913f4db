"""Properties of the billing rules over generated readings and time entries (hypothesis).

The report's row builder is driven directly with generated data (no database), so thousands
of cases run in seconds; the worked cases (test_worked_cases.py) cover the SQL around it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from vitalbridge.billing.minutes import Activity, Entry, Modality
from vitalbridge.billing.models import ConsentModality, Episode, MonitoringProgram, TimeEntry
from vitalbridge.billing.report import Policy, _patient_row, month_bounds
from vitalbridge.billing.rules import Credential

ZONES = ["America/Los_Angeles", "America/Chicago", "UTC", "Europe/Berlin", "Asia/Kolkata", "Pacific/Auckland"]
MONTHS = ["2025-11", "2025-12", "2026-01", "2026-03", "2026-10", "2026-11"]
START = datetime(2025, 9, 1, tzinfo=UTC)

instants = st.lists(
    st.integers(min_value=0, max_value=200 * 24 * 60).map(lambda m: START + timedelta(minutes=m)), max_size=120
)
entry_specs = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=200 * 24 * 60),
        st.integers(min_value=1, max_value=90 * 60),
        st.sampled_from(list(Credential)),
        st.sampled_from(list(Activity)),
        st.sampled_from([None, *Modality]),
    ),
    max_size=12,
)


def _episode(tz: str) -> Episode:
    return Episode(
        id="ep-1",
        organization_id="org",
        practice_id="pr",
        patient_id="pt",
        program=MonitoringProgram.rpm,
        time_zone=tz,
        ordering_practitioner_id="dr",
        condition_code="I10",
        consent_at=START,
        consent_modality=ConsentModality.verbal,
        consent_recorded_by="RN",
        setup_on=START.date(),
        setup_staff="RN",
        billing_practitioner_id="dr",
        started_on=START.date(),
        ended_on=None,
        starts_at=START,
        ends_at=None,
        created_by="t",
    )


def _entries(
    specs: list[tuple[int, int, Credential, Activity, Modality | None]],
) -> tuple[list[Entry], dict[str, TimeEntry]]:
    entries, rows = [], {}
    for i, (offset, seconds, credential, activity, modality) in enumerate(specs):
        at = START + timedelta(minutes=offset)
        eid = f"t{i}"
        interactive = modality is not None
        entries.append(Entry(eid, at, seconds, credential, activity, interactive, modality))
        rows[eid] = TimeEntry(
            id=eid,
            staff="RN",
            credential=credential,
            started_at=at,
            seconds=seconds,
            activity=activity,
            interactive=interactive,
            modality=modality,
        )
    return entries, rows


def _row(tz: str, month: str, readings: list[datetime], specs: Any, as_of: datetime, policy: Policy) -> dict[str, Any]:
    zone = ZoneInfo(tz)
    first, last = month_bounds(month)
    days = {t.astimezone(zone).date() for t in readings}
    entries, rows = _entries(specs)
    return _patient_row(
        _episode(tz),
        ("MRN", "Family", "Given"),
        min(readings) if readings else None,
        days,
        entries,
        rows,
        month=month,
        first=first,
        last=last,
        as_of=as_of,
        policy=policy,
    )


common = {
    "tz": st.sampled_from(ZONES),
    "month": st.sampled_from(MONTHS),
    "readings": instants,
    "specs": entry_specs,
    "as_of_days": st.integers(min_value=0, max_value=260),
    "policy": st.builds(Policy, st.sampled_from([2, 16]), st.booleans()),
}


@settings(max_examples=300, deadline=None)
@given(**common)
def test_a_period_never_yields_both_supply_codes(
    tz: str, month: str, readings: list[datetime], specs: Any, as_of_days: int, policy: Policy
) -> None:
    row = _row(tz, month, readings, specs, START + timedelta(days=as_of_days), policy)
    by_period: dict[str, set[str]] = {}
    for c in row["charges"]:
        if c["code"] in ("99454", "99445"):
            by_period.setdefault(c["basis"], set()).add(c["code"])
    assert all(len(codes) == 1 for codes in by_period.values())
    for p in row["device_periods"]:
        assert p["code"] in (None, "99454", "99445")
        if p["code"] == "99445":
            assert 2 <= p["days"] <= 15
        if p["code"] == "99454":
            assert 16 <= p["days"] <= 30


@settings(max_examples=300, deadline=None)
@given(**common)
def test_a_month_never_has_both_99457_and_99470_and_units_fit_the_minutes(
    tz: str, month: str, readings: list[datetime], specs: Any, as_of_days: int, policy: Policy
) -> None:
    row = _row(tz, month, readings, specs, START + timedelta(days=as_of_days), policy)
    units = {c["code"]: c["units"] for c in row["charges"] if c["basis"].startswith("calendar month")}
    minutes = row["time"]["minutes"]
    assert not ("99457" in units and "99470" in units)
    assert "99458" not in units or "99457" in units
    if "99457" in units:
        assert units["99457"] == 1
        assert 20 + 20 * units.get("99458", 0) <= minutes
    if "99470" in units:
        assert units["99470"] == 1
        assert minutes >= 10
    if units:
        assert row["time"]["interactions"] >= 1
    for code in ("99453", "99091"):
        assert all(c["units"] == 1 for c in row["charges"] if c["code"] == code)


@settings(max_examples=200, deadline=None)
@given(**common)
def test_replaying_the_same_readings_changes_nothing(
    tz: str, month: str, readings: list[datetime], specs: Any, as_of_days: int, policy: Policy
) -> None:
    as_of = START + timedelta(days=as_of_days)
    once = _row(tz, month, readings, specs, as_of, policy)
    twice = _row(tz, month, readings + readings, specs, as_of, policy)
    assert once == twice


@settings(max_examples=200, deadline=None)
@given(days=st.sets(st.integers(min_value=0, max_value=29)), start=st.dates(date(2025, 1, 1), date(2027, 12, 1)))
def test_supply_code_follows_the_day_count(days: set[int], start: date) -> None:
    from vitalbridge.billing.days import Period, judge_period

    period = Period(1, start, start + timedelta(days=29))
    result = judge_period(period, {start + timedelta(days=d) for d in days}, as_of=start + timedelta(days=40))
    n = len(days)
    cy2026 = period.end >= date(2026, 1, 1)
    expected = "99454" if n >= 16 else ("99445" if n >= 2 and cy2026 else None)
    assert (result.code.value if result.code else None) == expected
