"""A batch's new patients are written as plain rows in one INSERT: they must come out exactly as
the one-patient path (``registry.upsert``, ORM objects) writes them, repeats within a batch included."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select

from tests.hl7.support import make_site
from vitalbridge.audit import Actor
from vitalbridge.patients import registry
from vitalbridge.patients.fhir_mapping import EhrPatient
from vitalbridge.patients.models import Patient
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Practice

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ACTOR = Actor.service("test")
COLUMNS = (
    "ehr_id",
    "mrn",
    "mrn_system",
    "identifiers",
    "given_name",
    "family_name",
    "birth_date",
    "gender",
    "phone",
    "address",
    "status",
    "status_reason",
    "program_id",
    "provider_id",
    "ehr_synced_at",
)


def ehr(ehr_id: str, family: str, *, mrn: str | None, ids: list[dict[str, Any]]) -> EhrPatient:
    return EhrPatient(
        ehr_id=ehr_id,
        given_name="Ana",
        family_name=family,
        birth_date=date(1970, 1, 2),
        gender="female",
        mrn=mrn,
        mrn_system="urn:mrn" if mrn else None,
        phone="555-0100",
        address={"line": ["1 Main St"], "city": "Salem"},
        identifiers=ids,
    )


FIRST = ehr("e-1", "First", mrn="M1", ids=[{"system": "urn:mrn", "value": "M1"}, {"system": "urn:x", "value": "X"}])
# The same patient again later in the batch: new name, no MRN, one identifier fewer.
AGAIN = ehr("e-1", "Again", mrn=None, ids=[{"system": "urn:y", "value": "Y"}])
OTHER = ehr("e-2", "Other", mrn=None, ids=[])


def _columns(p: Patient) -> dict[str, Any]:
    return {c: getattr(p, c) for c in COLUMNS}


def test_batch_rows_match_the_one_patient_path(hub: Hub) -> None:
    batch_site = make_site(hub, "Org batch", facility="FAC1", code="PB")
    single_site = make_site(hub, "Org single", facility="FAC2", code="PS")
    with hub.sessions() as session, session.begin():
        practice = session.get(Practice, batch_site.practice_id)
        assert practice is not None
        result = registry.upsert_batch(session, practice, [FIRST, OTHER, AGAIN], now=NOW, actor=ACTOR)
    assert (result.created, result.updated, result.skipped) == (2, 1, 0)
    assert len(result.patient_ids) == 2
    with hub.sessions() as session, session.begin():
        practice = session.get(Practice, single_site.practice_id)
        assert practice is not None
        for one in (FIRST, OTHER, AGAIN):
            registry.upsert(session, practice, one, now=NOW, actor=ACTOR)
    with hub.sessions() as session:

        def rows(practice_id: str) -> list[dict[str, Any]]:
            found = session.scalars(select(Patient).where(Patient.practice_id == practice_id).order_by(Patient.ehr_id))
            return [_columns(p) for p in found]

        batch_rows = rows(batch_site.practice_id)
        assert batch_rows == rows(single_site.practice_id)
        ids = {p.id for p in session.scalars(select(Patient).where(Patient.practice_id == batch_site.practice_id))}
    assert ids == set(result.patient_ids)
    assert batch_rows[0]["family_name"] == "Again"
    assert batch_rows[0]["mrn"] == "M1"  # a later line without an MRN keeps the one sent before
    assert batch_rows[0]["identifiers"] == [
        {"system": "urn:y", "value": "Y"},
        {"system": "urn:mrn", "value": "M1"},
        {"system": "urn:x", "value": "X"},
    ]


def test_a_second_batch_updates_the_rows_the_first_inserted(hub: Hub) -> None:
    site = make_site(hub)
    with hub.sessions() as session, session.begin():
        practice = session.get(Practice, site.practice_id)
        assert practice is not None
        registry.upsert_batch(session, practice, [FIRST], now=NOW, actor=ACTOR)
    with hub.sessions() as session, session.begin():
        practice = session.get(Practice, site.practice_id)
        assert practice is not None
        again = registry.upsert_batch(session, practice, [AGAIN, OTHER], now=NOW, actor=ACTOR)
    assert (again.created, again.updated) == (1, 1)
    with hub.sessions() as session:
        names = sorted(p.family_name for p in session.scalars(select(Patient)))
    assert names == ["Again", "Other"]
