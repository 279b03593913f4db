"""ADT domain mapping alone: a parsed message in, demographics / merges out (no database)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from tests.hl7.support import one, sample
from vitalbridge.hl7v2.adt import KEEP, Identifier, classify, pick_mrn, read_merges, read_patient
from vitalbridge.hl7v2.codes import AdtEvent, CharacterSet, ErrorCode
from vitalbridge.hl7v2.errors import Hl7MessageInvalid, Hl7MessageRejected
from vitalbridge.hl7v2.parsing import parse_body, read_header


def parsed(raw: bytes) -> Any:
    return parse_body(raw, read_header(raw), CharacterSet.utf_8).message


def test_v23_a01_with_untyped_identifier() -> None:
    demo = read_patient(parsed(sample("adt_v2.3.hl7")[0]))
    assert demo.mrn == Identifier("230001", "", "NORTHCLINIC")
    assert (demo.family_name, demo.given_name) == ("Testperson", "Alma R")
    assert demo.birth_date == date(1952, 2, 14)
    assert demo.gender == "female"
    assert demo.address == {
        "line": ["12 Elm Street", "Apt 4"],
        "city": "Springfield",
        "state": "IL",
        "postalCode": "62701",
        "country": "USA",
    }
    assert demo.phone == "(217)555-0101"


def test_v24_mrn_is_chosen_over_ssn_and_structured_phone_is_read() -> None:
    demo = read_patient(parsed(sample("adt_v2.4.hl7")[0]))
    assert demo.mrn.value == "240001"
    assert [i.type_code for i in demo.identifiers] == ["MR", "SS"]
    assert demo.phone == "307 5550201"


def test_v24_explicit_null_clears_and_empty_keeps() -> None:
    demo = read_patient(parsed(sample("adt_v2.4.hl7")[2]))
    assert demo.address is None  # PID-11 was ""
    assert demo.phone == "(307)555-0299"
    a31 = read_patient(parsed(sample("adt_v2.4.hl7")[3]))
    assert a31.address is KEEP
    assert a31.phone is KEEP


def test_v251_hd_authority_legal_name_and_primary_phone() -> None:
    demo = read_patient(parsed(sample("adt_v2.5.1.hl7")[0]))
    assert demo.mrn == Identifier("251001", "MR", "NORTHCLINIC")
    assert demo.family_name == "Fakename"
    assert demo.phone == "1 269 5550301"  # the PRN repetition, not the work number


def test_pick_mrn_never_uses_other_typed_identifiers() -> None:
    assert pick_mrn((Identifier("1", "SS", ""), Identifier("2", "", "X"))) == Identifier("2", "", "X")
    assert pick_mrn((Identifier("1", "SS", ""), Identifier("2", "DL", ""))) is None


@pytest.mark.parametrize(
    ("pid", "message", "code", "location"),
    [
        ("PID|1||||Doe^J", "PID-3 patient identifier list is required", ErrorCode.required_field_missing, "PID^1^3"),
        ("PID|1||123-45^^^SSA^SS||Doe^J", "no medical record number", ErrorCode.required_field_missing, "PID^1^3"),
        ("PID|1||9^^^^MR", "PID-5 patient name is required", ErrorCode.required_field_missing, "PID^1^5"),
        ("PID|1||9^^^^MR||Doe^J||1990", "full date", ErrorCode.data_type, "PID^1^7"),
        ("PID|1||9^^^^MR||Doe^J||19900230", "calendar date", ErrorCode.data_type, "PID^1^7"),
        ("PID|1||9^^^^MR||Doe^J||19900101|Q", "table 0001", ErrorCode.table_value_not_found, "PID^1^8"),
    ],
)
def test_pid_errors_name_field_and_code(pid: str, message: str, code: ErrorCode, location: str) -> None:
    raw = f"MSH|^~\\&|A|F|||1||ADT^A08|C|P|2.5\r{pid}".encode()
    with pytest.raises(Hl7MessageInvalid, match=message) as info:
        read_patient(parsed(raw))
    assert info.value.hl7_error is code
    assert str(info.value.location) == location


def test_missing_pid_segment() -> None:
    with pytest.raises(Hl7MessageInvalid, match="PID segment is required"):
        read_patient(parsed(b"MSH|^~\\&|A|F|||1||ADT^A08|C|P|2.5\rEVN|A08"))


def test_a40_groups() -> None:
    (merge,) = read_merges(parsed(sample("adt_v2.5.1.hl7")[4]))
    assert merge.survivor.mrn.value == "251001"
    assert merge.prior_mrn.value == "251002"
    raw = b"MSH|^~\\&|A|F|||1||ADT^A40|C|P|2.5\rPID|1||S1^^^^MR||A^B\rMRG|P1^^^^MR\rPID|2||S2^^^^MR||C^D\rMRG|P2^^^^MR"
    assert [(m.survivor.mrn.value, m.prior_mrn.value) for m in read_merges(parsed(raw))] == [("S1", "P1"), ("S2", "P2")]


def test_a40_errors() -> None:
    with pytest.raises(Hl7MessageInvalid, match="MRG segment is required"):
        read_merges(parsed(one("malformed/a40_without_mrg.hl7")))
    with pytest.raises(Hl7MessageInvalid, match="MRG-1") as info:
        read_merges(parsed(b"MSH|^~\\&|A|F|||1||ADT^A40|C|P|2.5\rPID|1||S1^^^^MR||A^B\rMRG|"))
    assert str(info.value.location) == "MRG^1^1"


def test_classify() -> None:
    assert classify(read_header(sample("adt_v2.3.hl7")[4])) is AdtEvent.A40
    with pytest.raises(Hl7MessageRejected) as info:
        classify(read_header(one("malformed/unsupported_event.hl7")))
    assert info.value.hl7_error is ErrorCode.unsupported_event
    with pytest.raises(Hl7MessageRejected) as info:
        classify(read_header(one("malformed/unsupported_type.hl7")))
    assert info.value.hl7_error is ErrorCode.unsupported_message_type
