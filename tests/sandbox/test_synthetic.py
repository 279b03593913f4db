"""Synthetic patients: computed on demand, invertible ids, cheap enough for 100,000 per practice."""

from __future__ import annotations

from vitalbridge.sandbox.synthetic import SyntheticPatients


def test_ids_round_trip_and_differ_per_practice() -> None:
    a = SyntheticPatients(seed=7, practice="A", count=100_000)
    b = SyntheticPatients(seed=7, practice="B", count=100_000)
    for index in (0, 1, 99, 50_000, 99_999):
        assert a.index_of(a.id_for(index)) == index
        assert b.index_of(a.id_for(index)) is None
        assert a.index_of_mrn(a.mrn_for(index)) == index
    assert a.index_of(a.id_for(0)[:-1] + "z") is None
    assert len({a.id_for(i) for i in range(100_000)}) == 100_000


def test_a_hundred_thousand_patients_generate_without_storing_anything() -> None:
    patients = SyntheticPatients(seed=7, practice="A", count=100_000)
    summaries = [patients.summary(i) for i in range(0, 100_000, 97)]
    assert all(s.birthdate[:2] in ("19", "20") for s in summaries)
    assert patients.resource(99_999)["identifier"][0]["value"] == "MRN-0100000"
    assert patients.resource(5) == SyntheticPatients(seed=7, practice="A", count=10).resource(5)
