"""An interaction the EHR does not offer is not a missing patient (issue 12, item 7; FHIR R4
http.html: 404 on a type URL = "resource type not supported, or not a FHIR end-point", 405, 501,
OperationOutcome ``not-supported``, and the CapabilityStatement).

The peer (``tests/fhir_peer.py``) behaves like the field-trial servers: routes it lacks answer a
framework's plain 404. Nothing here may mark a patient gone, re-link it, or send its deliveries to
the patient-not-found path; each case surfaces as ``ehr_not_supported``, a configuration problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.delivery.support import Env, hub_http, make_env, record
from tests.fhir_peer import FhirPeer, outcome, statement
from vitalbridge.audit.models import AuditEntry
from vitalbridge.delivery.deliver import deliver
from vitalbridge.delivery.models import OutboxEntry
from vitalbridge.devices.simulator import post_webhook
from vitalbridge.ehr.client import ehr_client
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.errors import EhrNotFound, EhrUnavailable, EhrUnsupported
from vitalbridge.patients.ehr_reads import read_patient, search_patients
from vitalbridge.patients.models import Patient, PatientStatus
from vitalbridge.patients.relink import relink_patient
from vitalbridge.runtime import Hub
from vitalbridge.servers import ServerThread
from vitalbridge.tenancy.models import Practice

PATIENT_READ_ONLY = statement(
    [
        {"type": "Patient", "interaction": [{"code": "read"}]},
        {"type": "Observation", "interaction": [{"code": "create"}, {"code": "search-type"}]},
    ]
)
NO_PATIENT = statement([{"type": "Observation", "interaction": [{"code": "create"}, {"code": "search-type"}]}])


class World:
    def __init__(self, hub: Hub, peer: FhirPeer, url: str) -> None:
        self.hub = hub
        self.peer = peer
        self.env: Env = make_env(hub, url, ehr_patient_id="p-1")
        with hub.sessions() as session, session.begin():
            patient = session.get(Patient, self.env.patient_id)
            assert patient is not None
            patient.mrn = "MRN-100"

    @property
    def conn(self) -> PracticeConnection:
        with self.hub.sessions() as session:
            practice = session.get(Practice, self.env.practice_id)
            assert practice is not None
            return PracticeConnection.of(practice)

    def patient(self) -> Patient:
        with self.hub.sessions() as session:
            row = session.get(Patient, self.env.patient_id)
            assert row is not None
            return row

    def actions(self) -> list[str]:
        with self.hub.sessions() as session:
            return list(session.scalars(select(AuditEntry.action)))

    def one_reading(self) -> str:
        with hub_http(self.hub) as url, httpx.Client(timeout=30) as client:
            resp = post_webhook(client, url, self.env.gateway_id, self.env.gateway_secret, record(self.env, 2))
            assert resp.status_code in (200, 202), resp.text
        [row] = self.env.rows()
        return row.id


@pytest.fixture
def world(hub: Hub) -> Iterator[World]:
    peer = FhirPeer(PATIENT_READ_ONLY)
    with ServerThread(peer.app) as url:
        yield World(hub, peer, url)


# -- how one answer is classified -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "expected"),
    [
        # The field-trial case: no Patient search route, a framework 404.
        ("GET", "Patient", 404, None, EhrUnsupported),
        ("GET", "Patient", 404, {"detail": "Not Found"}, EhrUnsupported),
        ("POST", "Observation", 404, None, EhrUnsupported),
        ("GET", "Patient/$export", 404, None, EhrUnsupported),
        ("POST", "Observation", 405, outcome("not-supported", "POST not allowed"), EhrUnsupported),
        ("GET", "Patient", 405, None, EhrUnsupported),
        ("GET", "Patient", 501, None, EhrUnsupported),
        ("GET", "Patient", 400, outcome("not-supported", "search parameter 'name' is not supported"), EhrUnsupported),
        ("GET", "Patient/p-1", 404, outcome("not-supported", "read is not supported"), EhrUnsupported),
        # Missing resources stay missing resources.
        ("GET", "Patient/p-1", 404, outcome("not-found", "Patient/p-1 is not known"), EhrNotFound),
        ("GET", "Patient/p-1", 410, outcome("deleted", "Patient/p-1 was deleted"), EhrNotFound),
        (
            "POST",
            "Observation",
            404,
            outcome("not-found", "Patient/p-1 is not known", expression=["Observation.subject"]),
            EhrNotFound,
        ),
        ("GET", "Patient", 503, None, EhrUnavailable),
    ],
)
def test_unsupported_is_told_apart_from_missing(
    world: World, method: str, path: str, status: int, body: Any, expected: type[Exception]
) -> None:
    world.peer.answer(method, path, status, body)
    with pytest.raises(expected) as raised:
        ehr_client(world.hub).request(world.conn, method, path, json={} if method == "POST" else None)
    assert type(raised.value) is expected
    if expected is EhrUnsupported:
        assert not raised.value.transient
        assert "configuration problem" in str(raised.value)
        assert raised.value.as_problem()["error"] == "ehr_not_supported"


def test_a_404_read_counts_as_unsupported_when_the_statement_lacks_read(hub: Hub) -> None:
    peer = FhirPeer(NO_PATIENT)
    with ServerThread(peer.app) as url:
        w = World(hub, peer, url)
        with pytest.raises(EhrUnsupported, match="Patient read"):
            read_patient(hub, w.conn, "p-1", mrn_system=None, actor="service:test")


def test_a_404_read_is_a_missing_patient_when_the_statement_offers_read(world: World) -> None:
    with pytest.raises(EhrNotFound):
        read_patient(world.hub, world.conn, "p-1", mrn_system=None, actor="service:test")


def test_search_without_the_route_is_unsupported(world: World) -> None:
    with pytest.raises(EhrUnsupported):
        search_patients(world.hub, world.conn, {"identifier": "MRN-100"}, count=5, mrn_system=None, actor="t")


# -- what the hub does with it ----------------------------------------------------------------


def test_relink_against_a_server_without_patient_search_changes_nothing(world: World) -> None:
    # Patient/p-1 answers 404 (gone, or merged), and the search that would find the successor
    # does not exist: the hub must not conclude the patient is gone.
    world.peer.answer("GET", "Patient/p-1", 404, outcome("not-found", "unknown id"))
    with pytest.raises(EhrUnsupported):
        relink_patient(world.hub, world.env.practice_id, world.env.patient_id)
    patient = world.patient()
    assert patient.status is PatientStatus.active
    assert patient.ehr_id == "p-1"
    actions = world.actions()
    assert "patient.relink_unsupported" in actions
    assert "patient.ehr_gone" not in actions
    assert "patient.relinked" not in actions


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, None),  # no Observation create route
        (405, outcome("not-supported", "Observation create is not enabled for this practice")),
        (501, None),
        (422, outcome("not-supported", "write-back is not activated")),
    ],
)
def test_delivery_to_a_server_without_observation_create_is_a_configuration_dead_letter(
    world: World, status: int, body: Any
) -> None:
    outbox_id = world.one_reading()
    world.peer.answer("POST", "Observation", status, body)
    world.peer.answer("GET", "Observation", 200, {"resourceType": "Bundle", "type": "searchset", "entry": []})
    assert deliver(world.hub, outbox_id).status == "dead"
    with world.hub.sessions() as session:
        row = session.get(OutboxEntry, outbox_id)
        assert row is not None
        assert row.dead_reason == "configuration"
        assert (row.last_error or "").startswith("ehr_not_supported")
    # No re-link was attempted: the patient was never looked up, and stays as it was.
    assert world.peer.seen("GET", "Patient/p-1") == 0
    assert world.patient().status is PatientStatus.active
    assert "patient.ehr_gone" not in world.actions()


def test_a_delivery_404_for_the_subject_still_relinks_and_an_unsupported_lookup_is_survived(hub: Hub) -> None:
    # The EHR says the subject is unknown, but offers no way to look patients up: the row is dead
    # as patient_not_found (replayable), the patient is not marked gone, nothing crashes.
    peer = FhirPeer(NO_PATIENT)
    with ServerThread(peer.app) as url:
        w = World(hub, peer, url)
        outbox_id = w.one_reading()
        peer.answer("GET", "Observation", 200, {"resourceType": "Bundle", "type": "searchset", "entry": []})
        peer.answer(
            "POST", "Observation", 404, outcome("not-found", "unknown patient", expression=["Observation.subject"])
        )
        assert deliver(hub, outbox_id).status == "dead"
        with hub.sessions() as session:
            row = session.get(OutboxEntry, outbox_id)
            assert row is not None
            assert row.dead_reason == "patient_not_found"
        assert w.patient().status is PatientStatus.active
        assert "patient.relink_unsupported" in w.actions()


def test_the_patient_search_api_reports_a_configuration_problem(world: World) -> None:
    from tests.support import Tenant
    from vitalbridge.tenancy import service
    from vitalbridge.tenancy.models import Role

    with world.hub.sessions() as session, session.begin():
        _row, token = service.create_api_token(session, world.env.org_id, Role.clinician)
    tenant = Tenant(world.env.org_id, token)
    with hub_http(world.hub) as url, httpx.Client(base_url=url, timeout=30) as api:
        resp = api.get("/api/v1/ecw/patients/search/", params={"name": "smith"}, headers=tenant.headers)
    assert resp.status_code == 502, resp.text
    body = resp.json()
    assert body["error"] == "ehr_not_supported"
    assert "configuration problem" in body["detail"]
    assert "smith" not in resp.text
