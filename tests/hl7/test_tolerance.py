"""What a receiver must tolerate and what it must refuse: a byte-order mark or blank lines before MSH,
versions 2.6 to 2.8.2, and control characters inside patient fields. Real sockets for the wire cases."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.hl7.support import Peer, ack_fields, listener, make_site, sample
from vitalbridge.hl7v2.ack import AckOutcome, build_ack
from vitalbridge.hl7v2.adt import read_merges, read_patient
from vitalbridge.hl7v2.codes import AckCode, CharacterSet, ErrorCode, Version
from vitalbridge.hl7v2.errors import Hl7MessageInvalid, Hl7MessageRejected
from vitalbridge.hl7v2.files import split_messages
from vitalbridge.hl7v2.models import Hl7Message, Hl7MessageStatus
from vitalbridge.hl7v2.parsing import HeaderRejected, check_header, parse_body, read_header
from vitalbridge.patients.models import Patient
from vitalbridge.runtime import Hub

BOM = b"\xef\xbb\xbf"


def a04(
    control_id: str, *, version: str = "2.5.1", pid: str = "PID|1||T100^^^NORTHCLINIC^MR||Tolerant^Tess||19800101|F"
) -> bytes:
    return (
        f"MSH|^~\\&|ECWADT|NORTHCLINIC|VITALBRIDGE|VITALBRIDGE|20250101080000||ADT^A04^ADT_A01|{control_id}|P|{version}\r"
        f"EVN|A04|20250101080000\r{pid}\r"
    ).encode()


def parsed(raw: bytes) -> Any:
    return parse_body(raw, read_header(raw), CharacterSet.utf_8).message


def stored(hub: Hub) -> list[Hl7Message]:
    with hub.sessions() as session:
        return list(session.scalars(select(Hl7Message).order_by(Hl7Message.received_at)))


def mrns(hub: Hub) -> list[str]:
    with hub.sessions() as session:
        return sorted(p.mrn for p in session.scalars(select(Patient)))


# --- byte-order mark and leading whitespace -------------------------------------------------------


@pytest.mark.parametrize(
    "preamble",
    [BOM, b"\r\n" + BOM, BOM + b"\r\n", b"\n\n", b"\r\r", b" \t\r\n", BOM + BOM, b"\r\n" + BOM + b"\n"],
)
def test_bom_and_blank_lines_before_msh_are_tolerated(preamble: bytes) -> None:
    raw = preamble + a04("BOM-1")
    header = read_header(raw)
    check_header(header)
    assert header.control_id == "BOM-1"
    assert read_patient(parsed(raw)).mrn.value == "T100"


def test_bom_message_is_applied_over_mllp_and_acknowledged_with_its_control_id(hub: Hub) -> None:
    make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer:
        ack = ack_fields(peer.exchange(BOM + a04("BOM-2")))
        crlf = ack_fields(
            peer.exchange(
                b"\r\n" + BOM + a04("BOM-3", pid="PID|1||T101^^^NORTHCLINIC^MR||Crlf^Carl").replace(b"\r", b"\r\n")
            )
        )
    assert ack["MSA"][1:3] == ["AA", "BOM-2"]
    assert crlf["MSA"][1:3] == ["AA", "BOM-3"]
    assert mrns(hub) == ["T100", "T101"]
    rows = stored(hub)
    # Kept exactly as received, byte-order mark included.
    assert rows[0].raw.startswith(BOM)
    assert rows[0].status is Hl7MessageStatus.accepted


def test_a_resend_without_the_bom_is_a_duplicate(hub: Hub) -> None:
    make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer:
        first = ack_fields(peer.exchange(BOM + a04("BOM-4")))
        again = ack_fields(peer.exchange(a04("BOM-4")))
    assert first["MSA"][1:3] == again["MSA"][1:3] == ["AA", "BOM-4"]
    assert [r.status for r in stored(hub)] == [Hl7MessageStatus.accepted, Hl7MessageStatus.duplicate]


def test_a_file_with_a_bom_splits_into_messages() -> None:
    data = BOM + a04("F-1").replace(b"\r", b"\r\n") + b"\r\n" + BOM + a04("F-2")
    assert [read_header(m).control_id for m in split_messages(data)] == ["F-1", "F-2"]


def test_nak_carries_msh10_when_msh2_is_broken(hub: Hub) -> None:
    make_site(hub)
    raw = b"MSH|^^\\&|ECWADT|NORTHCLINIC|||1||ADT^A04|BROKEN-7|P|2.5.1\rPID|1||X^^^^MR||Doe^J"
    with pytest.raises(HeaderRejected) as info:
        read_header(raw)
    assert info.value.partial is not None
    assert info.value.partial.control_id == "BROKEN-7"
    with listener(hub) as srv, Peer(srv.port) as peer:
        f = ack_fields(peer.exchange(raw))
    assert f["MSA"][1:3] == ["AR", "BROKEN-7"]
    assert f["ERR"][2:4] == ["MSH^1^2", "102^Data type error^HL70357"]
    (row,) = stored(hub)
    assert (row.control_id, row.status) == ("BROKEN-7", Hl7MessageStatus.rejected)


def test_utf16_message_is_refused_with_its_control_id(hub: Hub) -> None:
    make_site(hub)
    raw = a04("U16-1").decode().encode("utf-16")  # Python writes the byte-order mark
    with listener(hub) as srv, Peer(srv.port) as peer:
        f = ack_fields(peer.exchange(raw))
    assert f["MSA"][1:3] == ["AR", "U16-1"]
    assert "UTF-16" in f["MSA"][3]
    assert f["ERR"][2] == "MSH^1^18"
    assert mrns(hub) == []


def test_unreadable_frame_still_gets_an_empty_msa2() -> None:
    # No MSH at all: nothing to mirror, so MSA-2 is empty (and the frame is stored for review).
    with pytest.raises(Hl7MessageRejected):
        read_header(BOM + b"GET / HTTP/1.1\r\n")


# --- versions ------------------------------------------------------------------------------------


def test_versions_26_to_282_are_read_like_251() -> None:
    messages = sample("adt_v2.6-2.8.hl7")
    versions = [read_header(m).version for m in messages]
    assert versions == [Version.v2_6, Version.v2_7, Version.v2_7_1, Version.v2_8, Version.v2_8_1, Version.v2_8_2]
    for m in messages:
        check_header(read_header(m))
    a01 = read_patient(parsed(messages[0]))
    assert (a01.mrn.value, a01.family_name, a01.phone) == ("260001", "Placeholder", "1 269 5550321")
    # v2.8 sender that fills only PID-40 (telecommunication information) for the phone.
    assert read_patient(parsed(messages[3])).phone == "1 269 5550328"
    (merge,) = read_merges(parsed(messages[5]))
    assert (merge.survivor.mrn.value, merge.prior_mrn.value) == ("260001", "281001")


def test_later_versions_over_mllp(hub: Hub) -> None:
    make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer:
        acks = [ack_fields(peer.exchange(m)) for m in sample("adt_v2.6-2.8.hl7")]
    assert [a["MSA"][1:3] for a in acks] == [
        ["AA", "N26-0001"],
        ["AA", "N27-0001"],
        ["AA", "N271-0001"],
        ["AA", "N28-0001"],
        ["AA", "N281-0001"],
        ["AA", "N282-0001"],
    ]
    # The ACK speaks the sender's version.
    assert [a["MSH"][11] for a in acks] == ["2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"]
    # 281001 was merged into 260001 by the 2.8.2 A40.
    with hub.sessions() as session:
        states = {p.mrn: p.status.value for p in session.scalars(select(Patient))}
    assert states["281001"] == "merged"
    assert {"260001", "270001", "280001"} <= set(states)


@pytest.mark.parametrize("version", ["2.1", "2.2", "3.0", "2.9.9", "banana"])
def test_versions_that_cannot_be_read_get_ar_203(hub: Hub, version: str) -> None:
    make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer:
        f = ack_fields(peer.exchange(a04("V-1", version=version)))
    assert f["MSA"][1:3] == ["AR", "V-1"]
    assert f["ERR"][2:4] == ["MSH^1^12", "203^Unsupported version id^HL70357"]
    assert mrns(hub) == []


def test_v27_nak_puts_the_reason_in_err8_not_the_withdrawn_msa3() -> None:
    header = read_header(a04("N-27", version="2.7"))
    outcome = AckOutcome(AckCode.AE, "PID-3 patient identifier list is required", ErrorCode.required_field_missing)
    f = ack_fields(build_ack(header, outcome).payload)
    assert f["MSA"] == ["MSA", "AE", "N-27"]
    assert f["ERR"][3].startswith("101^")
    assert f["ERR"][8] == "PID-3 patient identifier list is required"
    older = ack_fields(build_ack(read_header(a04("N-26", version="2.6")), outcome).payload)
    assert older["MSA"][3] == "PID-3 patient identifier list is required"


# --- control characters in patient fields --------------------------------------------------------


@pytest.mark.parametrize(
    ("pid", "field", "codepoint"),
    [
        ("PID|1||T2\x00^^^NORTHCLINIC^MR||Doe^Jane||19800101|F", 3, "U+0000"),
        ("PID|1||T2^^^NORTHCLINIC^MR||Do\x00e^Jane||19800101|F", 5, "U+0000"),
        ("PID|1||T2^^^NORTHCLINIC^MR||Doe^Ja\x1bne||19800101|F", 5, "U+001B"),
        ("PID|1||T2^^^NORTHCLINIC^MR||Doe^Jane||19800101|F|||1 Main\x7f St^^Town", 11, "U+007F"),
        ("PID|1||T2^^^NORTHCLINIC^MR||Doe^Jane||19800101|F|||1 Main St^^Town||555\x010100", 13, "U+0001"),
        ("PID|1||T2^^^NORTHCLINIC^MR||Doe\x85^Jane||19800101|F", 5, "U+0085"),
        ("PID|1||T2\\X00\\^^^NORTHCLINIC^MR||Doe^Jane||19800101|F", 3, "U+0000"),  # escaped NUL
        ("PID|1||T2\\X09\\^^^NORTHCLINIC^MR||Doe^Jane||19800101|F", 3, "U+0009"),  # tab in an identifier
        ("PID|1||T2^^^NORTHCLINIC^MR||Doe^Jane||1980\x0c0101|F", 7, "U+000C"),
    ],
)
def test_control_characters_in_pid_refuse_the_message(pid: str, field: int, codepoint: str) -> None:
    with pytest.raises(Hl7MessageInvalid) as info:
        read_patient(parsed(a04("C-1", pid=pid)))
    assert info.value.hl7_error is ErrorCode.data_type
    assert str(info.value.location) == f"PID^1^{field}"
    assert codepoint in info.value.message
    assert "Doe" not in info.value.message
    assert "T2" not in info.value.message


def test_line_breaks_and_tabs_in_text_fields_become_spaces() -> None:
    pid = "PID|1||T3^^^NORTHCLINIC^MR||Doe^Mary\\.br\\Ann||19800101|F|||1 Main St\\X09\\Rear^^Town"
    demo = read_patient(parsed(a04("C-2", pid=pid)))
    assert demo.given_name == "Mary Ann"
    assert isinstance(demo.address, dict)
    assert demo.address["line"] == ["1 Main St Rear"]


def test_control_character_in_mrg_is_refused() -> None:
    raw = (
        b"MSH|^~\\&|ECWADT|NORTHCLINIC|||1||ADT^A40^ADT_A39|M-1|P|2.5.1\r"
        b"PID|1||S1^^^NORTHCLINIC^MR||Doe^Jane\rMRG|P1\x00^^^NORTHCLINIC^MR\r"
    )
    with pytest.raises(Hl7MessageInvalid) as info:
        read_merges(parsed(raw))
    assert str(info.value.location) == "MRG^1^1"


def test_control_character_over_mllp_is_nakked_and_nothing_is_stored_as_patient(hub: Hub) -> None:
    make_site(hub)
    with listener(hub) as srv, Peer(srv.port) as peer:
        f = ack_fields(peer.exchange(a04("C-3", pid="PID|1||T4^^^NORTHCLINIC^MR||Nul\x00l^Nora||19800101|F")))
    assert f["MSA"][1:3] == ["AE", "C-3"]
    assert f["ERR"][2:4] == ["PID^1^5", "102^Data type error^HL70357"]
    assert mrns(hub) == []
    (row,) = stored(hub)
    assert row.status is Hl7MessageStatus.error
    assert b"\x00" in row.raw  # the message itself is kept for review
