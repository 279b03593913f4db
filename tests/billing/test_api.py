"""``/api/v1/billing/…`` over real HTTP: episodes, the time log, reports, closing and amendments,
roles, problem bodies that never echo values, and the readings webhook's ``origin``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.readings_support import World, add_patient, assign, make_world
from tests.support import api_client, make_tenant, token_for
from vitalbridge.devices.models import Reading
from vitalbridge.devices.readings import ReadingOrigin
from vitalbridge.devices.simulator import make_record
from vitalbridge.patients.models import Provider
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Role

NY = "America/New_York"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _provider(hub: Hub, org_id: str) -> str:
    with hub.sessions() as session, session.begin():
        p = Provider(organization_id=org_id, name="Dr Billing", npi="1234567893")
        session.add(p)
        session.flush()
        return p.id


def _episode(patient_id: str, provider_id: str, **over: Any) -> dict[str, Any]:
    return {
        "patient_id": patient_id,
        "program": "rpm",
        "time_zone": NY,
        "ordering_practitioner_id": provider_id,
        "condition_code": "I10",
        "consent": {"at": "2026-09-30T14:00:00-04:00", "modality": "verbal", "recorded_by": "RN Lee"},
        "setup": {"on": "2026-10-01", "staff": "RN Lee"},
        "billing_practitioner_id": provider_id,
        "started_on": "2026-10-01",
        **over,
    }


def _setup(hub: Hub) -> tuple[World, dict[str, str], str, str]:
    world = make_world(hub)
    billing = _bearer(token_for(hub, world.org_id, Role.billing))
    patient = add_patient(hub, world)
    provider = _provider(hub, world.org_id)
    return world, billing, patient, provider


def test_enrollment_and_the_one_program_rule(hub: Hub) -> None:
    world, billing, patient, provider = _setup(hub)
    with api_client(hub) as client:
        resp = client.post("/api/v1/billing/episodes/", json=_episode(patient, provider), headers=billing)
        assert resp.status_code == 201, resp.text
        rpm = resp.json()
        assert (rpm["program"], rpm["time_zone"], rpm["setup_on"]) == ("rpm", NY, "2026-10-01")
        # An RTM episode overlapping the open RPM one is refused, and so is a second RPM one.
        for program, start in (("rtm", "2026-11-15"), ("rpm", "2026-12-01"), ("rtm", "2026-09-01")):
            clash = client.post(
                "/api/v1/billing/episodes/",
                json=_episode(patient, provider, program=program, started_on=start),
                headers=billing,
            )
            assert clash.status_code == 409, clash.text
            assert "one episode at a time" in clash.json()["detail"]
        # Once RPM has ended, RTM may start the day after (but not on its last day).
        ended = client.post(
            f"/api/v1/billing/episodes/{rpm['id']}/end", json={"ended_on": "2026-11-30"}, headers=billing
        )
        assert ended.status_code == 200, ended.text
        same_day = _episode(patient, provider, program="rtm", started_on="2026-11-30")
        assert client.post("/api/v1/billing/episodes/", json=same_day, headers=billing).status_code == 409
        rtm = client.post(
            "/api/v1/billing/episodes/",
            json=_episode(patient, provider, program="rtm", started_on="2026-12-01", setup=None),
            headers=billing,
        )
        assert rtm.status_code == 201, rtm.text
        listed = client.get("/api/v1/billing/episodes/", params={"patient_id": patient}, headers=world.clinician)
        assert [e["program"] for e in listed.json()] == ["rpm", "rtm"]
        # Setup is recorded once.
        url = f"/api/v1/billing/episodes/{rtm.json()['id']}/setup"
        assert client.post(url, json={"on": "2026-12-02", "staff": "RN Lee"}, headers=billing).status_code == 200
        assert client.post(url, json={"on": "2026-12-03", "staff": "RN Lee"}, headers=billing).status_code == 409


def test_refusals_name_the_field_and_never_echo_the_value(hub: Hub) -> None:
    world, billing, patient, provider = _setup(hub)
    with api_client(hub) as client:
        bad = _episode(patient, provider, time_zone="Mars/Olympus_Quux", condition_code="NOTACODE")
        resp = client.post("/api/v1/billing/episodes/", json=bad, headers=billing)
        assert resp.status_code == 422
        body = resp.json()
        assert body["error"] == "validation_failed"
        assert {tuple(e["loc"]) for e in body["errors"]} == {("body", "time_zone"), ("body", "condition_code")}
        assert "Olympus_Quux" not in resp.text
        assert "NOTACODE" not in resp.text
        unknown = client.post(
            "/api/v1/billing/episodes/",
            json=_episode(patient, provider, billing_practitioner_id="no-such-provider"),
            headers=billing,
        )
        assert unknown.status_code == 422
        assert [e["loc"] for e in unknown.json()["errors"]] == [["body", "billing_practitioner_id"]]
        both = {
            "patient_id": patient,
            "staff": "RN Quuxley",
            "credential": "clinical_staff",
            "started_at": "2026-11-03T10:00:00-05:00",
            "ended_at": "2026-11-03T10:20:00-05:00",
            "minutes": 20,
            "activity": "data_review",
        }
        resp = client.post("/api/v1/billing/time-entries/", json=both, headers=billing)
        assert resp.status_code == 422
        assert "Quuxley" not in resp.text
        # Integration tokens have no business with billing.
        denied = client.get("/api/v1/billing/episodes/", headers=world.integration)
        assert denied.status_code == 403


def test_time_log_is_append_only_with_corrections(hub: Hub) -> None:
    world, billing, patient, provider = _setup(hub)
    with api_client(hub) as client:
        client.post("/api/v1/billing/episodes/", json=_episode(patient, provider), headers=billing)
        entry = {
            "patient_id": patient,
            "staff": "RN Lee",
            "credential": "clinical_staff",
            "started_at": "2026-11-03T10:00:00-05:00",
            "ended_at": "2026-11-03T10:25:00-05:00",
            "activity": "communication",
            "interactive": True,
            "modality": "call",
            "note": "reviewed BP trend by phone",
        }
        resp = client.post("/api/v1/billing/time-entries/", json=entry, headers=world.clinician)
        assert resp.status_code == 201, resp.text
        first = resp.json()
        assert first["seconds"] == 25 * 60
        fix = {"minutes": 12, "note": "timer left running"}
        url = f"/api/v1/billing/time-entries/{first['id']}/corrections"
        corrected = client.post(url, json=fix, headers=billing)
        assert corrected.status_code == 201, corrected.text
        assert corrected.json()["corrects_id"] == first["id"]
        assert corrected.json()["seconds"] == 12 * 60
        assert client.post(url, json=fix, headers=billing).status_code == 409
        # The original is still there, marked as corrected.
        original = client.get(f"/api/v1/billing/time-entries/{first['id']}", headers=billing).json()
        assert (original["seconds"], original["corrected_by_id"]) == (25 * 60, corrected.json()["id"])
        listed = client.get(
            "/api/v1/billing/time-entries/", params={"patient_id": patient, "month": "2026-11"}, headers=billing
        ).json()
        assert [e["id"] for e in listed] == [first["id"], corrected.json()["id"]]
        report = client.get(f"/api/v1/billing/reports/{world.practice_id}/2026-11", headers=billing)
        assert report.status_code == 200, report.text
        row = report.json()["report"]["patients"][0]
        assert row["time"]["minutes"] == 12
        assert [c["code"] for c in row["charges"]] == ["99470"]


def _post_reading(client: httpx.Client, world: World, rid: str, at: datetime, **extra: Any) -> None:
    record = make_record(rid, "BILLDEV1", "blood_pressure", at, {"systolic": 128, "diastolic": 82, "unit": "mmHg"})
    record.update(extra)
    resp = world.post(client, record)
    assert resp.status_code in (200, 202), resp.text


def test_webhook_origin_manual_never_counts(hub: Hub) -> None:
    world, billing, patient, provider = _setup(hub)
    today = datetime.now(UTC)
    start = (today - timedelta(days=5)).date()
    with api_client(hub) as client:
        assert assign(client, world, "BILLDEV1", patient).status_code == 200
        body = _episode(patient, provider, time_zone="UTC", started_on=start.isoformat(), setup=None)
        body["consent"]["at"] = f"{start.isoformat()}T09:00:00+00:00"
        assert client.post("/api/v1/billing/episodes/", json=body, headers=billing).status_code == 201
        day = datetime.combine(start, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
        _post_reading(client, world, "bill-r1", day)
        _post_reading(client, world, "bill-r2", day + timedelta(days=1), origin="manual")
        _post_reading(client, world, "bill-r3", day + timedelta(days=2))
        # The same reading delivered twice is one reading: the report does not move.
        # The period's last day (its date of service) decides the month it belongs to.
        month = (start + timedelta(days=29)).strftime("%Y-%m")
        before = client.get(f"/api/v1/billing/reports/{world.practice_id}/{month}", headers=billing).json()
        _post_reading(client, world, "bill-r3", day + timedelta(days=2))
        after = client.get(f"/api/v1/billing/reports/{world.practice_id}/{month}", headers=billing).json()
        listed = client.get("/api/v1/readings/", params={"patient": patient}, headers=world.clinician).json()
        assert sorted((r["gateway_reading_id"], r["origin"]) for r in listed) == [
            ("bill-r1", "device"),
            ("bill-r2", "manual"),
            ("bill-r3", "device"),
        ]
    with hub.sessions() as session:
        origins = dict(
            session.execute(
                Reading.__table__.select().with_only_columns(Reading.gateway_reading_id, Reading.origin)
            ).all()
        )
    assert origins == {
        "bill-r1": ReadingOrigin.device,
        "bill-r2": ReadingOrigin.manual,
        "bill-r3": ReadingOrigin.device,
    }
    period = before["report"]["patients"][0]["device_periods"][0]
    assert period["qualifying_days"] == [start.isoformat(), (start + timedelta(days=2)).isoformat()]
    assert before["report"]["patients"] == after["report"]["patients"]


def test_report_csv_close_and_amendment(hub: Hub) -> None:
    from tests.billing.support import ACTOR
    from vitalbridge.billing import months
    from vitalbridge.billing.report import Policy
    from vitalbridge.devices.readings import DeviceRef, ReadingSource, ReadingType
    from vitalbridge.devices.registry import devices_for

    world, billing, patient, provider = _setup(hub)
    with hub.sessions() as session, session.begin():
        device = devices_for(session, world.org_id, [DeviceRef("BILLDEV9")])["BILLDEV9"]
        device_id = device.id

    def reading(rid: str, at: datetime) -> None:
        with hub.sessions() as session, session.begin():
            session.add(
                Reading(
                    organization_id=world.org_id,
                    gateway_id=world.gateway_id,
                    gateway_reading_id=rid,
                    source=ReadingSource.sync,
                    device_id=device_id,
                    patient_id=patient,
                    reading_type=ReadingType.weight,
                    measured_at=at,
                )
            )

    first = datetime(2026, 10, 1, 13, 0, tzinfo=UTC)
    for i in range(15):
        reading(f"oct-{i}", first + timedelta(days=i))
    with api_client(hub) as client:
        assert (
            client.post("/api/v1/billing/episodes/", json=_episode(patient, provider), headers=billing).status_code
            == 201
        )
        url = f"/api/v1/billing/reports/{world.practice_id}/2026-10"
        csv_resp = client.get(url, params={"format": "csv"}, headers=billing)
        assert csv_resp.status_code == 200
        assert csv_resp.headers["content-type"].startswith("text/csv")
        lines = csv_resp.text.splitlines()
        assert lines[0].startswith("patient_id,mrn,family_name")
        assert any(",99445,1,2026-10-30," in line for line in lines[1:])
        closed = client.post(f"{url}/close", headers=billing)
        assert closed.status_code == 201, closed.text
        assert closed.json()["version"] == 1
        assert client.post(f"{url}/close", headers=billing).status_code == 409
        # The current month is not over anywhere yet.
        this_month = datetime.now(UTC).strftime("%Y-%m")
        assert (
            client.post(f"/api/v1/billing/reports/{world.practice_id}/{this_month}/close", headers=billing).status_code
            == 409
        )
        # A late reading (15 → 16 days) changes nothing in the closed version ...
        reading("oct-late", first + timedelta(days=20))
        frozen = client.get(url, headers=billing).json()
        assert frozen["status"] == "closed"
        assert [c["code"] for c in frozen["report"]["patients"][0]["charges"]] == ["99445"]
        assert frozen["amendments"] == []
        # ... until the recompute runs: then it is an amendment beside the closed version.
        with hub.sessions() as session, session.begin():
            summary = months.recompute(session, now=datetime.now(UTC), policy=Policy(), actor=ACTOR)
        assert [(m, v) for _p, m, v in summary.amended] == [("2026-10", 2)]
        amended = client.get(url, headers=billing).json()
        assert [c["code"] for c in amended["report"]["patients"][0]["charges"]] == ["99445"]
        assert [v["kind"] for v in amended["versions"]] == ["closed", "amendment"]
        change = amended["amendments"][0]
        assert change["changed_patient_ids"] == [patient]
        assert sorted(c["code"] for c in change["patients"][0]["charges"]) == ["99453", "99454"]
        # Each stored version can be exported as it was stored.
        v2 = client.get(url, params={"format": "csv", "version": 2}, headers=billing)
        assert v2.status_code == 200
        assert sorted(line.split(",")[7] for line in v2.text.splitlines()[1:]) == ["99453", "99454"]
        assert client.get(url, params={"version": 3}, headers=billing).status_code == 404
        # Nothing new: a second recompute stores nothing.
        with hub.sessions() as session, session.begin():
            again = months.recompute(session, now=datetime.now(UTC), policy=Policy(), actor=ACTOR)
        assert (again.months, again.amended) == (1, [])


def test_another_organization_reaches_no_billing_object(hub: Hub) -> None:
    world, billing, patient, provider = _setup(hub)
    other = make_tenant(hub, "Billing Other Org")
    b_billing = _bearer(token_for(hub, other.org_id, Role.billing))
    with api_client(hub) as client:
        episode = client.post("/api/v1/billing/episodes/", json=_episode(patient, provider), headers=billing).json()
        entry = client.post(
            "/api/v1/billing/time-entries/",
            json={
                "patient_id": patient,
                "staff": "RN Lee",
                "credential": "clinical_staff",
                "started_at": "2026-10-03T10:00:00-04:00",
                "minutes": 5,
                "activity": "data_review",
            },
            headers=billing,
        ).json()
        client.post(f"/api/v1/billing/reports/{world.practice_id}/2026-10/close", headers=billing)
        probes: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", f"/api/v1/billing/episodes/{episode['id']}", None),
            ("POST", f"/api/v1/billing/episodes/{episode['id']}/end", {"ended_on": "2026-12-31"}),
            ("POST", f"/api/v1/billing/episodes/{episode['id']}/setup", {"on": "2026-10-02", "staff": "x"}),
            ("POST", "/api/v1/billing/episodes/", _episode(patient, provider, started_on="2027-01-01")),
            ("GET", f"/api/v1/billing/time-entries/{entry['id']}", None),
            ("POST", f"/api/v1/billing/time-entries/{entry['id']}/corrections", {"void": True, "note": "b"}),
            (
                "POST",
                "/api/v1/billing/time-entries/",
                {
                    **{k: entry[k] for k in ("patient_id", "staff", "credential", "started_at", "activity")},
                    "minutes": 5,
                },
            ),
            ("GET", f"/api/v1/billing/reports/{world.practice_id}/2026-10", None),
            ("GET", "/api/v1/billing/reports/BILLPRAC/2026-10", None),
            ("POST", f"/api/v1/billing/reports/{world.practice_id}/2026-11/close", None),
        ]
        for method, url, body in probes:
            resp = client.request(method, url, json=body, headers=b_billing)
            assert resp.status_code == 404, (method, url, resp.status_code, resp.text)
            assert patient not in resp.text
        assert client.get("/api/v1/billing/episodes/", headers=b_billing).json() == []
        assert client.get("/api/v1/billing/time-entries/", headers=b_billing).json() == []
        # Nothing B tried changed A's objects.
        mine = client.get(f"/api/v1/billing/episodes/{episode['id']}", headers=billing).json()
        assert mine["ended_on"] is None
        assert (
            client.get(f"/api/v1/billing/time-entries/{entry['id']}", headers=billing).json()["corrected_by_id"] is None
        )


@pytest.mark.parametrize(
    ("field", "value"), [("started_on", "0001-01-01"), ("ended_on", "9999-12-31"), ("time_zone", "../../etc/passwd")]
)
def test_dates_and_zones_out_of_range_are_422_not_500(hub: Hub, field: str, value: str) -> None:
    _world, billing, patient, provider = _setup(hub)
    with api_client(hub) as client:
        resp = client.post(
            "/api/v1/billing/episodes/", json=_episode(patient, provider, **{field: value}), headers=billing
        )
    assert resp.status_code == 422, resp.text
    assert [e["loc"] for e in resp.json()["errors"]] == [["body", field]]
    assert value not in resp.text


@pytest.mark.parametrize("month", ["2024-12", "2026-13", "0000-01"])
def test_months_without_rules_or_malformed_are_422(hub: Hub, month: str) -> None:
    world, billing, _patient, _provider_id = _setup(hub)
    with api_client(hub) as client:
        resp = client.get(f"/api/v1/billing/reports/{world.practice_id}/{month}", headers=billing)
    assert resp.status_code == 422, resp.text
