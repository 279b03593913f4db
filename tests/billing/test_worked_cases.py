"""The worked cases of docs/billing.md, one test each, on SQLite and PostgreSQL.

Dates cross month ends, the US and EU daylight-saving changes and 1 Jan 2026; zones lie east
(Asia/Kolkata, Asia/Tokyo, Europe/Berlin) and west (America/*) of UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.billing.support import daily, local, make_billing_world, utc_daily
from vitalbridge.billing.months import Policy
from vitalbridge.devices.readings import ReadingOrigin
from vitalbridge.runtime import Hub


@dataclass(frozen=True)
class DeviceCase:
    tz: str
    started_on: date
    device: list[datetime]
    month: str
    as_of: datetime
    period: int
    days: int
    code: str | None
    rule_set: str
    second_device: list[datetime] = field(default_factory=list)
    manual: list[datetime] = field(default_factory=list)
    last_day: date | None = None
    setup_billed: bool | None = None


NY, CHI, LA = "America/New_York", "America/Chicago", "America/Los_Angeles"
KOL, TYO, BER = "Asia/Kolkata", "Asia/Tokyo", "Europe/Berlin"
NOV_25 = datetime(2026, 11, 25, tzinfo=UTC)
DEC_5 = datetime(2026, 12, 5, tzinfo=UTC)

DEVICE_CASES = {
    "16 days across the US fall-back → 99454 and 99453": DeviceCase(
        NY,
        date(2026, 10, 20),
        daily(NY, date(2026, 10, 20), 16),
        "2026-11",
        DEC_5,
        1,
        16,
        "99454",
        "CY2026",
        setup_billed=True,
    ),
    "15 days → 99445, no 99453 before 16 days": DeviceCase(
        NY,
        date(2026, 10, 20),
        daily(NY, date(2026, 10, 20), 15),
        "2026-11",
        DEC_5,
        1,
        15,
        "99445",
        "CY2026",
        setup_billed=False,
    ),
    "2 days in a period across the month end, east of UTC → 99445": DeviceCase(
        KOL,
        date(2026, 10, 25),
        [local(KOL, "2026-10-25T10:00"), local(KOL, "2026-11-20T10:00")],
        "2026-11",
        DEC_5,
        1,
        2,
        "99445",
        "CY2026",
    ),
    "1 day → nothing": DeviceCase(
        KOL, date(2026, 10, 25), [local(KOL, "2026-10-25T10:00")], "2026-11", DEC_5, 1, 1, None, "CY2026"
    ),
    "15 days under CY2025 → nothing (no 99445 before 2026)": DeviceCase(
        LA,
        date(2025, 11, 20),
        daily(LA, date(2025, 11, 20), 15),
        "2025-12",
        datetime(2026, 1, 5, tzinfo=UTC),
        1,
        15,
        None,
        "CY2025",
    ),
    "16 days under CY2025 → 99454": DeviceCase(
        LA,
        date(2025, 11, 20),
        daily(LA, date(2025, 11, 20), 16),
        "2025-12",
        datetime(2026, 1, 5, tzinfo=UTC),
        1,
        16,
        "99454",
        "CY2025",
    ),
    "a period spanning 1 Jan 2026 is judged by CY2026 → 99445": DeviceCase(
        LA,
        date(2025, 12, 15),
        daily(LA, date(2025, 12, 15), 10),
        "2026-01",
        datetime(2026, 1, 20, tzinfo=UTC),
        1,
        10,
        "99445",
        "CY2026",
    ),
    "two devices on one day are one day → 15 days, 99445": DeviceCase(
        NY,
        date(2026, 10, 20),
        daily(NY, date(2026, 10, 20), 15),
        "2026-11",
        DEC_5,
        1,
        15,
        "99445",
        "CY2026",
        second_device=[local(NY, "2026-10-21T19:00"), local(NY, "2026-10-22T07:00")],
    ),
    "a manual reading on a day without device data does not count → 15 days, 99445": DeviceCase(
        NY,
        date(2026, 10, 20),
        daily(NY, date(2026, 10, 20), 15),
        "2026-11",
        DEC_5,
        1,
        15,
        "99445",
        "CY2026",
        manual=[local(NY, "2026-11-10T08:00")],
    ),
    "US fall-back folds two UTC days into one Chicago day → 15 days, 99445": DeviceCase(
        CHI,
        date(2026, 10, 20),
        utc_daily(datetime(2026, 10, 20, 5, 30, tzinfo=UTC), 16),
        "2026-11",
        DEC_5,
        1,
        15,
        "99445",
        "CY2026",
    ),
    "EU spring-forward, Berlin: days follow local midnight": DeviceCase(
        BER,
        date(2026, 3, 14),
        utc_daily(datetime(2026, 3, 14, 22, 30, tzinfo=UTC), 16),
        "2026-04",
        datetime(2026, 4, 20, tzinfo=UTC),
        1,
        16,
        "99454",
        "CY2026",
        last_day=date(2026, 3, 30),
    ),
    "Tokyo: 15:30 UTC is the next local day, so the period ends (and bills) in December": DeviceCase(
        TYO,
        date(2026, 11, 1),
        utc_daily(datetime(2026, 11, 1, 15, 30, tzinfo=UTC), 16),
        "2026-12",
        DEC_5,
        1,
        16,
        "99454",
        "CY2026",
        last_day=date(2026, 11, 17),
    ),
}


@pytest.mark.parametrize("case", DEVICE_CASES.values(), ids=list(DEVICE_CASES))
def test_device_case(hub: Hub, case: DeviceCase) -> None:
    world = make_billing_world(hub)
    patient = world.add_patient()
    world.enroll(patient, tz=case.tz, started_on=case.started_on)
    for at in case.device:
        world.reading(patient, at)
    for at in case.second_device:
        world.reading(patient, at, device=1)
    for at in case.manual:
        world.reading(patient, at, origin=ReadingOrigin.manual)
    row = world.row(case.month, case.as_of, patient)
    period = next(p for p in row["device_periods"] if p["number"] == case.period)
    assert period["billed_in_this_month"] is True
    assert period["days"] == case.days
    assert len(period["qualifying_days"]) == case.days
    assert period["code"] == case.code
    assert period["rule_set"] == case.rule_set
    assert period["complete"] is True
    supply = [c for c in row["charges"] if c["code"] in ("99454", "99445")]
    assert [c["code"] for c in supply] == ([case.code] if case.code else [])
    if case.code:
        assert supply[0]["date_of_service"] == period["end"]
        assert supply[0]["units"] == 1
    if case.last_day is not None:
        assert period["qualifying_days"][-1] == case.last_day.isoformat()
    if case.setup_billed is not None:
        assert any(c["code"] == "99453" for c in row["charges"]) is case.setup_billed
    for at in case.manual:
        assert at.date().isoformat() not in period["qualifying_days"]


def test_tokyo_period_is_not_billed_in_november(hub: Hub) -> None:
    """The same Tokyo data seen from November: shown as running, billed nowhere yet."""
    case = DEVICE_CASES["Tokyo: 15:30 UTC is the next local day, so the period ends (and bills) in December"]
    world = make_billing_world(hub)
    patient = world.add_patient()
    world.enroll(patient, tz=case.tz, started_on=case.started_on)
    for at in case.device:
        world.reading(patient, at)
    row = world.row("2026-11", datetime(2026, 11, 25, tzinfo=UTC), patient)
    assert [p["billed_in_this_month"] for p in row["device_periods"]] == [False]
    assert row["device_periods"][0]["start"] == "2026-11-02"
    assert not [c for c in row["charges"] if c["code"] in ("99454", "99445", "99453")]


def test_three_more_days_by_the_period_end(hub: Hub) -> None:
    world = make_billing_world(hub)
    patient = world.add_patient()
    world.enroll(patient, tz=NY, started_on=date(2026, 11, 15))
    for at in daily(NY, date(2026, 11, 15), 13):
        world.reading(patient, at)
    row = world.row("2026-11", local(NY, "2026-11-28T12:00"), patient)
    texts = [m["text"] for m in row["missing"]]
    assert "3 more days by 14 Dec for 99454" in texts
    running = row["device_periods"][0]
    assert (running["end"], running["code"], running["complete"]) == ("2026-12-14", "99445", False)


def test_no_reading_yet_says_so(hub: Hub) -> None:
    world = make_billing_world(hub)
    patient = world.add_patient()
    world.enroll(patient, tz=NY, started_on=date(2026, 11, 15))
    world.reading(patient, local(NY, "2026-11-14T08:00"))  # before the episode: not its first reading
    row = world.row("2026-11", local(NY, "2026-11-20T12:00"), patient)
    assert row["first_qualifying_day"] is None
    assert row["device_periods"] == []
    assert row["missing"][0]["code"] == "99445"


@dataclass(frozen=True)
class TimeCase:
    month: str
    minutes: int
    modality: str | None  # the interactive contact's modality, None = no interactive contact
    expected: dict[str, int]
    missing: str | None = None


def _tc(
    month: str, minutes: int, modality: str | None, expected: dict[str, int], missing: str | None = None
) -> TimeCase:
    return TimeCase(month, minutes, modality, expected, missing)


TIME_CASES = {
    "9 min with a call → nothing": _tc("2026-11", 9, "call", {}, "1 more minute by 30 Nov for 99470"),
    "9 min without contact → nothing": _tc("2026-11", 9, None, {}),
    "10 min with a call → 99470": _tc("2026-11", 10, "call", {"99470": 1}, "10 more minutes by 30 Nov for 99457"),
    "10 min without contact → nothing": _tc(
        "2026-11", 10, None, {}, "an interactive communication by 30 Nov for 99470"
    ),
    "14 min with a call → 99470, 6 more minutes for 99457": _tc(
        "2026-11", 14, "call", {"99470": 1}, "6 more minutes by 30 Nov for 99457"
    ),
    "19 min with video → 99470": _tc("2026-11", 19, "video", {"99470": 1}),
    "19 min without contact → nothing": _tc("2026-11", 19, None, {}),
    "19 min with a secure message only → nothing by default": _tc("2026-11", 19, "message", {}),
    "20 min with a call → 99457 (never with 99470)": _tc("2026-11", 20, "call", {"99457": 1}),
    "20 min without contact → nothing": _tc("2026-11", 20, None, {}),
    "39 min in person → 99457": _tc("2026-11", 39, "in_person", {"99457": 1}, "1 more minute by 30 Nov for 99458"),
    "39 min without contact → nothing": _tc("2026-11", 39, None, {}),
    "40 min with a call → 99457 + 99458": _tc("2026-11", 40, "call", {"99457": 1, "99458": 1}),
    "40 min without contact → nothing": _tc("2026-11", 40, None, {}),
    "41 min with a call → 99457 + 99458": _tc("2026-11", 41, "call", {"99457": 1, "99458": 1}),
    "41 min without contact → nothing": _tc("2026-11", 41, None, {}),
    "60 min with a call → 99457 + 2 x 99458": _tc("2026-11", 60, "call", {"99457": 1, "99458": 2}),
    "CY2025: 10 min with a call → nothing (no 99470)": _tc(
        "2025-11", 10, "call", {}, "10 more minutes by 30 Nov for 99457"
    ),
    "CY2025: 20 min with a call → 99457": _tc("2025-11", 20, "call", {"99457": 1}),
    "CY2025: 41 min with a call → 99457 + 99458": _tc("2025-11", 41, "call", {"99457": 1, "99458": 1}),
}


@pytest.mark.parametrize("case", TIME_CASES.values(), ids=list(TIME_CASES))
def test_time_case(hub: Hub, case: TimeCase) -> None:
    world = make_billing_world(hub)
    patient = world.add_patient()
    year, month = (int(p) for p in case.month.split("-"))
    world.enroll(patient, tz=LA, started_on=date(year, month, 1))
    # Split over two entries on different days: the month sums them.
    first = case.minutes // 2
    contact = {"interactive": True, "modality": case.modality, "activity": "communication"} if case.modality else {}
    world.log(patient, local(LA, f"{case.month}-03T10:00"), first, **contact)
    world.log(patient, local(LA, f"{case.month}-18T15:00"), case.minutes - first)
    as_of = local(LA, f"{case.month}-20T12:00")
    row = world.row(case.month, as_of, patient)
    got = {c["code"]: c["units"] for c in row["charges"] if c["code"] in ("99470", "99457", "99458")}
    assert got == case.expected
    assert row["time"]["minutes"] == case.minutes
    assert len(row["time"]["entry_ids"]) == 2
    if case.missing is not None:
        assert case.missing in [m["text"] for m in row["missing"]]


def test_messages_count_when_the_practice_says_so(hub: Hub) -> None:
    world = make_billing_world(hub)
    patient = world.add_patient()
    world.enroll(patient, tz=LA, started_on=date(2026, 11, 1))
    world.log(patient, local(LA, "2026-11-03T10:00"), 12, interactive=True, modality="message")
    row = world.row("2026-11", DEC_5, patient, Policy(messages_are_interactive=True))
    assert [c["code"] for c in row["charges"]] == ["99470"]


def test_time_is_summed_by_the_patients_calendar_month(hub: Hub) -> None:
    """03:00 UTC on 1 Dec is still 30 Nov in Los Angeles: the minutes belong to November."""
    world = make_billing_world(hub)
    patient = world.add_patient()
    world.enroll(patient, tz=LA, started_on=date(2026, 11, 1))
    world.log(patient, datetime(2026, 12, 1, 3, 0, tzinfo=UTC), 20, interactive=True, modality="call")
    november = world.row("2026-11", DEC_5, patient)
    december = world.row("2026-12", datetime(2026, 12, 20, tzinfo=UTC), patient)
    assert [c["code"] for c in november["charges"]] == ["99457"]
    assert november["charges"][0]["final"] is True
    assert december["time"]["minutes"] == 0


@pytest.mark.parametrize(("minutes", "billed"), [(30, True), (29, False)])
def test_physician_interpretation_99091(hub: Hub, minutes: int, billed: bool) -> None:
    world = make_billing_world(hub)
    patient = world.add_patient()
    world.enroll(patient, tz=NY, started_on=date(2026, 10, 20))
    for at in daily(NY, date(2026, 10, 20), 16):
        world.reading(patient, at)
    world.log(
        patient,
        local(NY, "2026-11-02T09:00"),
        minutes,
        credential="physician_qhp",
        activity="data_interpretation",
        staff="Dr Example",
    )
    row = world.row("2026-11", DEC_5, patient)
    codes = [c["code"] for c in row["charges"]]
    assert ("99091" in codes) is billed
    # The physician's interpretation minutes are not treatment-management minutes too.
    assert row["time"]["minutes"] == 0
    assert row["device_periods"][0]["interpretation_minutes"] == minutes


def test_a_correction_replaces_the_entry(hub: Hub) -> None:
    from vitalbridge.billing import timelog
    from vitalbridge.billing.schemas import CorrectionIn

    world = make_billing_world(hub)
    patient = world.add_patient()
    world.enroll(patient, tz=NY, started_on=date(2026, 11, 1))
    entry = world.log(patient, local(NY, "2026-11-03T10:00"), 25, interactive=True, modality="call")
    assert [c["code"] for c in world.row("2026-11", DEC_5, patient)["charges"]] == ["99457"]
    with hub.sessions() as session, session.begin():
        timelog.correct(
            session, world.org_id, entry, CorrectionIn(minutes=15, note="timer left running"), actor="user:x"
        )
    row = world.row("2026-11", DEC_5, patient)
    assert [c["code"] for c in row["charges"]] == ["99470"]
    assert row["time"]["minutes"] == 15
    assert entry not in row["time"]["entry_ids"]


def test_setup_after_two_days_when_configured(hub: Hub) -> None:
    world = make_billing_world(hub)
    patient = world.add_patient()
    world.enroll(patient, tz=NY, started_on=date(2026, 10, 20))
    for at in daily(NY, date(2026, 10, 20), 3):
        world.reading(patient, at)
    default = world.row("2026-11", DEC_5, patient)
    relaxed = world.row("2026-11", DEC_5, patient, Policy(setup_min_days=2))
    assert [c["code"] for c in default["charges"]] == ["99445"]
    assert sorted(c["code"] for c in relaxed["charges"]) == ["99445", "99453"]


def test_setup_is_billed_once_per_episode(hub: Hub) -> None:
    world = make_billing_world(hub)
    patient = world.add_patient()
    world.enroll(patient, tz=NY, started_on=date(2026, 9, 1))
    for at in daily(NY, date(2026, 9, 1), 90):
        world.reading(patient, at)
    seen = []
    for month in ("2026-09", "2026-10", "2026-11"):
        row = world.row(month, DEC_5 + timedelta(days=30), patient)
        seen += [c["code"] for c in row["charges"] if c["code"] == "99453"]
    assert seen == ["99453"]


@dataclass(frozen=True)
class EpisodeCase:
    first: tuple[str, date, date | None]  # program, started_on, ended_on
    second: tuple[str, date, date | None]
    accepted: bool


EPISODE_CASES = {
    "RTM overlapping an open RPM episode → refused": EpisodeCase(
        ("rpm", date(2026, 10, 1), None), ("rtm", date(2026, 11, 15), None), False
    ),
    "RTM starting on the RPM episode's last day → refused": EpisodeCase(
        ("rpm", date(2026, 10, 1), date(2026, 11, 30)), ("rtm", date(2026, 11, 30), None), False
    ),
    "RTM starting before an RPM episode and running into it → refused": EpisodeCase(
        ("rpm", date(2026, 10, 1), None), ("rtm", date(2026, 9, 1), date(2026, 10, 1)), False
    ),
    "RPM overlapping RPM → refused": EpisodeCase(
        ("rpm", date(2025, 12, 20), date(2026, 1, 10)), ("rpm", date(2026, 1, 1), None), False
    ),
    "RTM the day after RPM ended → accepted": EpisodeCase(
        ("rpm", date(2026, 10, 1), date(2026, 11, 30)), ("rtm", date(2026, 12, 1), None), True
    ),
    "RPM ending the day before RTM starts → accepted": EpisodeCase(
        ("rtm", date(2026, 10, 1), None), ("rpm", date(2026, 9, 1), date(2026, 9, 30)), True
    ),
}


@pytest.mark.parametrize("case", EPISODE_CASES.values(), ids=list(EPISODE_CASES))
def test_episode_case(hub: Hub, case: EpisodeCase) -> None:
    from vitalbridge.errors import Conflict

    world = make_billing_world(hub)
    patient = world.add_patient()
    program, start, end = case.first
    world.enroll(patient, tz=TYO, started_on=start, ended_on=end, program=program)
    program, start, end = case.second
    if case.accepted:
        world.enroll(patient, tz=TYO, started_on=start, ended_on=end, program=program)
    else:
        with pytest.raises(Conflict, match="one episode at a time"):
            world.enroll(patient, tz=TYO, started_on=start, ended_on=end, program=program)


def test_every_period_of_an_episode(hub: Hub) -> None:
    """The per-period view: 45 days of data in Kolkata → a complete period and a running one."""
    from vitalbridge.billing.models import Episode
    from vitalbridge.billing.report import episode_periods

    world = make_billing_world(hub)
    patient = world.add_patient()
    episode_id = world.enroll(patient, tz=KOL, started_on=date(2026, 10, 1))
    for at in daily(KOL, date(2026, 10, 3), 45, at="23:50"):
        world.reading(patient, at)
    world.reading(patient, local(KOL, "2026-10-03T07:00"), origin=ReadingOrigin.manual)
    with hub.sessions() as session:
        episode = session.get(Episode, episode_id)
        assert episode is not None
        periods = episode_periods(session, episode, as_of=local(KOL, "2026-11-16T12:00"))
    assert [(p["number"], p["start"], p["end"], p["days"], p["code"]) for p in periods] == [
        (1, "2026-10-03", "2026-11-01", 30, "99454"),
        (2, "2026-11-02", "2026-12-01", 14, "99445"),  # 16 Nov 23:50 is after the as-of time
    ]
    assert [p["billed_in_month"] for p in periods] == ["2026-11", "2026-12"]
    assert (periods[0]["complete"], periods[1]["complete"]) == (True, False)
    assert [m["text"] for m in periods[1]["missing"]] == ["2 more days by 1 Dec for 99454"]


def test_concurrent_overlapping_enrolments_let_exactly_one_through(hub: Hub) -> None:
    """Two enrolments racing for the same patient: the patient row lock makes one of them see the other."""
    import threading

    from vitalbridge.errors import Conflict

    world = make_billing_world(hub)
    patient = world.add_patient()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def enroll(program: str) -> None:
        barrier.wait(timeout=30)
        try:
            world.enroll(patient, tz=NY, started_on=date(2026, 11, 1), program=program)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=enroll, args=(p,)) for p in ("rpm", "rtm")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["conflict", "ok"]


def test_a_new_billing_practitioner_starts_with_the_next_period(hub: Hub) -> None:
    """One practitioner per period: a change made inside period 2 bills from period 3 on."""
    from vitalbridge.billing.practitioners import change_practitioner
    from vitalbridge.errors import Conflict
    from vitalbridge.patients.models import Provider

    world = make_billing_world(hub)
    patient = world.add_patient()
    episode = world.enroll(patient, tz=NY, started_on=date(2026, 9, 1))
    for at in daily(NY, date(2026, 9, 1), 90):
        world.reading(patient, at)
    with hub.sessions() as session, session.begin():
        newcomer = Provider(organization_id=world.org_id, name="Dr Newcomer")
        session.add(newcomer)
        session.flush()
        change = change_practitioner(
            session, world.org_id, episode, newcomer.id, now=local(NY, "2026-10-10T12:00"), actor="user:x"
        )
        newcomer_id = newcomer.id
    # Periods: 1 Sep-30 Sep, 1 Oct-30 Oct, 31 Oct-29 Nov.
    assert change.effective_from == date(2026, 10, 31)
    later = DEC_5 + timedelta(days=40)
    october = world.row("2026-10", later, patient)
    november = world.row("2026-11", later, patient)
    assert {(c["code"], c["billing_practitioner_id"]) for c in october["charges"]} == {("99454", world.physician_id)}
    assert {(c["code"], c["billing_practitioner_id"]) for c in november["charges"]} == {("99454", newcomer_id)}
    # A second change for the same next period is refused; before any reading it applies at once.
    with hub.sessions() as session, session.begin(), pytest.raises(Conflict, match="already changes"):
        change_practitioner(
            session, world.org_id, episode, world.provider_id, now=local(NY, "2026-10-11T12:00"), actor="user:x"
        )
    other = world.add_patient("Otherpatient")
    fresh = world.enroll(other, tz=NY, started_on=date(2026, 11, 1))
    with hub.sessions() as session, session.begin():
        now_change = change_practitioner(
            session, world.org_id, fresh, world.provider_id, now=local(NY, "2026-11-02T12:00"), actor="user:x"
        )
    assert now_change.effective_from == date(2026, 11, 1)


@pytest.mark.parametrize(("now", "closes"), [("2026-12-01T11:59:59+00:00", False), ("2026-12-01T12:00:00+00:00", True)])
def test_a_month_closes_once_it_is_over_in_every_zone(hub: Hub, now: str, closes: bool) -> None:
    """November ends last at UTC-12, at noon UTC on 1 December."""
    from vitalbridge.billing.months import close_month
    from vitalbridge.errors import Conflict
    from vitalbridge.tenancy.models import Practice

    world = make_billing_world(hub)
    with hub.sessions() as session, session.begin():
        practice = session.get(Practice, world.practice_id)
        assert practice is not None
        when = datetime.fromisoformat(now)
        if closes:
            assert close_month(session, practice, "2026-11", now=when, policy=Policy(), actor="user:x").version == 1
        else:
            with pytest.raises(Conflict, match="not over"):
                close_month(session, practice, "2026-11", now=when, policy=Policy(), actor="user:x")
