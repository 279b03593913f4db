"""A40 merges over the wire, and the ``patients.merge`` service hook, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.hl7.support import Peer, ack_fields, listener, make_site, sample
from vitalbridge.audit.models import AuditEntry
from vitalbridge.errors import Conflict
from vitalbridge.patients import merge
from vitalbridge.patients.models import Patient, PatientEhrAlias, PatientStatus
from vitalbridge.runtime import Hub


def by_mrn(hub: Hub) -> dict[str, Patient]:
    with hub.sessions() as session:
        return {p.mrn or "": p for p in session.scalars(select(Patient))}


def send_all(hub: Hub, messages: list[bytes]) -> list[str]:
    with listener(hub) as srv, Peer(srv.port) as peer:
        return [ack_fields(peer.exchange(m))["MSA"][1] for m in messages]


@pytest.mark.parametrize(
    ("file", "survivor", "prior"),
    [
        ("adt_v2.3.hl7", "230001", "230002"),
        ("adt_v2.4.hl7", "240001", "240002"),
        ("adt_v2.5.1.hl7", "251001", "251002"),
    ],
)
def test_a40_merges_prior_into_survivor_in_each_version(hub: Hub, file: str, survivor: str, prior: str) -> None:
    make_site(hub)
    assert send_all(hub, sample(file)) == ["AA"] * 5
    people = by_mrn(hub)
    assert people[prior].status is PatientStatus.merged
    assert people[prior].merged_into_id == people[survivor].id
    assert people[survivor].status is PatientStatus.active
    old = [i["value"] for i in people[survivor].identifiers if i.get("use") == "old"]
    # Every identifier of the prior patient stays findable on the survivor, marked old.
    assert old == [i["value"] for i in people[prior].identifiers]
    assert prior in old
    with hub.sessions() as session:
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "patient.merged")).one()
    assert audit.resource_ids == [people[prior].id, people[survivor].id]
    assert audit.detail["reason"] == "hl7.A40"


def test_a40_is_idempotent_and_later_updates_to_the_old_mrn_are_refused(hub: Hub) -> None:
    make_site(hub)
    messages = sample("adt_v2.5.1.hl7")
    resent_merge = messages[4].replace(b"N251-0005", b"N251-0006")
    late_update = messages[3].replace(b"N251-0004", b"N251-0007")  # A31 for the merged-away MRN
    acks = send_all(hub, [*messages, resent_merge, late_update])
    assert acks == ["AA"] * 6 + ["AE"]
    people = by_mrn(hub)
    assert len(people) == 2
    assert people["251002"].status is PatientStatus.merged


def test_a40_for_an_unknown_survivor_renames_the_prior_patient(hub: Hub) -> None:
    make_site(hub)
    register, merge_msg = sample("adt_v2.4.hl7")[1], sample("adt_v2.4.hl7")[4]
    assert send_all(hub, [register, merge_msg]) == ["AA", "AA"]
    (patient,) = by_mrn(hub).values()
    assert patient.mrn == "240001"
    assert patient.status is PatientStatus.active
    assert (patient.family_name, patient.given_name) == ("Exampleton", "Clara M")
    assert {"value": "240002", "type": "MR", "system": "NORTHCLINIC", "use": "old"} in patient.identifiers


def test_a40_for_unknown_patients_creates_the_survivor(hub: Hub) -> None:
    make_site(hub)
    assert send_all(hub, [sample("adt_v2.3.hl7")[4]]) == ["AA"]
    assert list(by_mrn(hub)) == ["230001"]


def _two_patients(hub: Hub) -> tuple[str, str, str]:
    site = make_site(hub)
    with hub.sessions() as session, session.begin():
        a = Patient(organization_id=site.org_id, practice_id=site.practice_id, mrn="A", ehr_id="ehr-a", identifiers=[])
        b = Patient(organization_id=site.org_id, practice_id=site.practice_id, mrn="B", ehr_id="ehr-b", identifiers=[])
        session.add_all([a, b])
        session.flush()
        return site.practice_id, a.id, b.id


def test_merge_patients_moves_aliases_runs_steps_and_is_idempotent(hub: Hub) -> None:
    practice_id, a_id, b_id = _two_patients(hub)
    calls: list[tuple[str, str]] = []
    merge.register_merge_step("recorder", lambda _s, f, i: calls.append((f.id, i.id)))
    try:
        with hub.sessions() as session, session.begin():
            done = merge.merge_patients(session, session.get(Patient, a_id), session.get(Patient, b_id), "test")  # type: ignore[arg-type]
        with hub.sessions() as session, session.begin():
            again = merge.merge_patients(session, session.get(Patient, a_id), session.get(Patient, b_id), "test")  # type: ignore[arg-type]
    finally:
        merge.unregister_merge_step("recorder")
    assert (done, again) == (True, False)
    assert calls == [(a_id, b_id)]
    with hub.sessions() as session:
        alias = session.scalars(select(PatientEhrAlias)).one()
        survivor = session.get(Patient, b_id)
    assert (alias.ehr_id, alias.patient_id, alias.practice_id) == ("ehr-a", b_id, practice_id)
    assert survivor is not None
    assert {"value": "A", "type": "MR", "system": "", "use": "old"} in survivor.identifiers


def test_merge_patients_refuses_inconsistent_merges(hub: Hub) -> None:
    _practice_id, a_id, b_id = _two_patients(hub)
    other = make_site(hub, "Org B", facility="OTHER", code="P2")
    with hub.sessions() as session, session.begin():
        c = Patient(organization_id=other.org_id, practice_id=other.practice_id, mrn="C", identifiers=[])
        session.add(c)
        session.flush()
        c_id = c.id
    with hub.sessions() as session, session.begin():
        a, b, c = (session.get(Patient, i) for i in (a_id, b_id, c_id))
        assert a is not None
        assert b is not None
        assert c is not None
        with pytest.raises(Conflict, match="different practices"):
            merge.merge_patients(session, a, c, "test")
        assert merge.merge_patients(session, a, b, "test")
        with pytest.raises(Conflict, match="itself been merged"):
            merge.merge_patients(session, b, a, "test")
