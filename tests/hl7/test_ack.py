"""ACK building (the error tree → HL7 wire) and reading a peer's ACK."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.hl7.support import ack_fields
from vitalbridge.errors import ConfigurationError
from vitalbridge.hl7v2.ack import AckOutcome, Identity, build_ack, read_ack
from vitalbridge.hl7v2.codes import AckCode, CharacterSet, ErrorCode
from vitalbridge.hl7v2.errors import ErrorLocation, invalid, reject
from vitalbridge.hl7v2.parsing import parse, read_header

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_accept_mirrors_the_message() -> None:
    header = read_header(
        b"MSH|^~\\&|ECWADT|NORTHCLINIC^1.2.3^ISO|HUBAPP|HUBFAC|20240501||ADT^A08^ADT_A01|CTRL-9|T|2.5.1"
    )
    ack = build_ack(header, AckOutcome.accept(), now=NOW, control_id="ACK1")
    f = ack_fields(ack.payload)
    assert f["MSH"][2:12] == [
        "HUBAPP",
        "HUBFAC",
        "ECWADT",
        "NORTHCLINIC^1.2.3^ISO",
        "20240501120000+0000",
        "",
        "ACK^A08^ACK",
        "ACK1",
        "T",
        "2.5.1",
    ]
    assert f["MSA"] == ["MSA", "AA", "CTRL-9"]
    assert "ERR" not in f


def test_empty_receiver_fields_fall_back_to_the_hub_identity() -> None:
    header = read_header(b"MSH|^~\\&|ECWADT|NORTHCLINIC|||20240501||ADT^A04|C1|P|2.3")
    f = ack_fields(build_ack(header, AckOutcome.accept(), identity=Identity("VB", "HUB")).payload)
    assert f["MSH"][2:6] == ["VB", "HUB", "ECWADT", "NORTHCLINIC"]
    assert f["MSH"][11] == "2.3"


def test_nak_v251_has_err_2_3_4() -> None:
    header = read_header(b"MSH|^~\\&|A|F|||20240501||ADT^A04^ADT_A01|C7|P|2.5.1")
    exc = invalid(
        "PID-3 patient identifier list is required", ErrorCode.required_field_missing, ErrorLocation("PID", 1, 3)
    )
    f = ack_fields(build_ack(header, AckOutcome.from_error(exc)).payload)
    assert f["MSA"] == ["MSA", "AE", "C7", "PID-3 patient identifier list is required"]
    assert f["ERR"] == ["ERR", "", "PID^1^3", "101^Required field missing^HL70357", "E"]


def test_nak_v23_also_fills_err_1() -> None:
    header = read_header(b"MSH|^~\\&|A|F|||20240501||ADT^A04|C8|P|2.3")
    exc = reject("unsupported ADT event", ErrorCode.unsupported_event, ErrorLocation("MSH", 1, 9, 2))
    f = ack_fields(build_ack(header, AckOutcome.from_error(exc)).payload)
    assert f["MSA"][1] == "AR"
    assert f["ERR"][1] == "MSH^1^9^201&Unsupported event code&HL70357"
    assert f["ERR"][2] == "MSH^1^9^1^2"


def test_text_is_escaped_with_the_senders_delimiters() -> None:
    header = read_header(b"MSH#*!%@#A#F###20240501##ADT*A04#C9#P#2.5")
    f = build_ack(header, AckOutcome(AckCode.AE, "bad # and * here", ErrorCode.data_type)).text.split("\r")
    assert f[0].startswith("MSH#*!%@#")
    assert f[1] == "MSA#AE#C9#bad %F% and %S% here"


def test_internal_errors_become_ae_207_without_detail() -> None:
    outcome = AckOutcome.from_error(ConfigurationError("database password wrong for host db1"))
    assert outcome == AckOutcome(AckCode.AE, "application internal error", ErrorCode.internal_error)


def test_ack_for_an_unreadable_message_still_parses() -> None:
    ack = build_ack(None, AckOutcome(AckCode.AR, "not an HL7 v2 message", ErrorCode.segment_sequence))
    parsed = read_ack(parse(ack.payload))
    assert parsed.code is AckCode.AR
    assert parsed.acknowledged_control_id == ""


def test_charset_is_mirrored_and_used_to_encode() -> None:
    header = read_header("MSH|^~\\&|A|Clínica|||1||ADT^A04|C1|P|2.4|||||USA|8859/1".encode("latin-1"))
    ack = build_ack(header, AckOutcome.accept(), charset=CharacterSet.latin_1)
    assert ack.payload.split(b"|")[17].startswith(b"8859/1")
    assert "Clínica".encode("latin-1") in ack.payload


def test_read_ack_collects_codes_and_text() -> None:
    raw = (
        b"MSH|^~\\&|EHR|SITE|VB|VB|20240501||ACK^R01^ACK|A55|P|2.5.1\r"
        b"MSA|AE|ORU-1\r"
        b"ERR||PID^1^3|204^Unknown key identifier^HL70357|E||||patient not on file\r"
    )
    ack = read_ack(parse(raw))
    assert (ack.code, ack.acknowledged_control_id, ack.control_id) == (AckCode.AE, "ORU-1", "A55")
    assert ack.error_codes == ("204",)
    assert ack.text == "Unknown key identifier; patient not on file"
