"""Parsing layer alone: frame bytes in, header / decoded message out; escaping both ways."""

from __future__ import annotations

import pytest

from tests.hl7.support import one, sample
from vitalbridge.hl7v2.access import FieldReader, delimiters_of, segments
from vitalbridge.hl7v2.codes import CharacterSet, ErrorCode, Version
from vitalbridge.hl7v2.errors import Hl7MessageRejected
from vitalbridge.hl7v2.escaping import Delimiters, escape, unescape
from vitalbridge.hl7v2.parsing import check_header, parse_body, read_header


def test_header_of_each_sample_version() -> None:
    versions = {read_header(m).version for f in ("adt_v2.3.hl7", "adt_v2.4.hl7", "adt_v2.5.1.hl7") for m in sample(f)}
    assert versions == {Version.v2_3, Version.v2_4, Version.v2_5_1}
    h = read_header(sample("adt_v2.5.1.hl7")[0])
    assert (h.message_type, h.trigger_event, h.structure) == ("ADT", "A01", "ADT_A01")
    assert h.control_id == "N251-0001"
    assert h.facility_namespace == "NORTHCLINIC"  # MSH-4 is an HD; only the namespace id routes
    assert h.sending_facility_raw == "NORTHCLINIC^2.16.840.1.113883.3.9999^ISO"
    assert h.type_label == "ADT^A01"


def test_header_reads_non_default_delimiters() -> None:
    raw = b"MSH#*!%@#APP#FAC#R#F#20240101##ADT*A08#C1#P#2.4\rPID#1##X1***MR"
    h = read_header(raw)
    assert h.delimiters == Delimiters(field="#", component="*", repetition="!", escape="%", subcomponent="@")
    assert (h.message_type, h.trigger_event, h.control_id) == ("ADT", "A08", "C1")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"PID|1||X", ErrorCode.segment_sequence),
        (b"GET / HTTP/1.1", ErrorCode.segment_sequence),
        (b"MSH", ErrorCode.segment_sequence),
        (b"MSHA^~\\&|x|y", ErrorCode.data_type),
        (b"MSH|^^\\&|A|B", ErrorCode.data_type),
    ],
)
def test_unreadable_headers_are_rejected(raw: bytes, code: ErrorCode) -> None:
    with pytest.raises(Hl7MessageRejected) as info:
        read_header(raw)
    assert info.value.hl7_error is code


def test_check_header_requires_control_id_and_supported_version() -> None:
    with pytest.raises(Hl7MessageRejected, match="MSH-10") as info:
        check_header(read_header(one("malformed/missing_control_id.hl7")))
    assert str(info.value.location) == "MSH^1^10"
    with pytest.raises(Hl7MessageRejected, match="unsupported version") as info:
        check_header(read_header(one("malformed/unsupported_version.hl7")))
    assert info.value.hl7_error is ErrorCode.unsupported_version
    for version in ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"):
        check_header(read_header(f"MSH|^~\\&|A|B|C|D|1||ADT^A08|X|P|{version}".encode()))
    for version in ("2.1", "2.2", "3.0", "2.10", "V2.5", ""):
        with pytest.raises(Hl7MessageRejected):
            check_header(read_header(f"MSH|^~\\&|A|B|C|D|1||ADT^A08|X|P|{version}".encode()))


def test_latin1_message_is_decoded_by_msh18() -> None:
    raw = one("adt_a04_8859-1.hl7")
    assert "Muñoz".encode("latin-1") in raw
    parsed = parse_body(raw, read_header(raw), CharacterSet.utf_8)
    assert parsed.charset is CharacterSet.latin_1
    pid = FieldReader(segments(parsed.message, "PID")[0], delimiters_of(parsed.message))
    assert pid.value(5) == "Muñoz"
    assert pid.value(5, component=2) == "Renée"
    assert pid.value(11, component=3) == "Québec"


def test_utf8_message_is_decoded_by_msh18() -> None:
    raw = one("adt_a04_utf8.hl7")
    parsed = parse_body(raw, read_header(raw), CharacterSet.ascii)
    assert parsed.charset is CharacterSet.utf_8
    pid = FieldReader(segments(parsed.message, "PID")[0], delimiters_of(parsed.message))
    assert (pid.value(5), pid.value(5, component=2)) == ("Łukasiewicz", "Zoë")


def test_empty_msh18_uses_the_configured_default() -> None:
    raw = "MSH|^~\\&|A|NORTHCLINIC|C|D|1||ADT^A08|X|P|2.5\rPID|1||1^^^^MR||Renée^Zoë".encode("latin-1")
    parsed = parse_body(raw, read_header(raw), CharacterSet.latin_1)
    assert "Renée" in parsed.text
    with pytest.raises(Hl7MessageRejected, match="not valid UNICODE UTF-8"):
        parse_body(raw, read_header(raw), CharacterSet.utf_8)


def test_unknown_and_undecodable_charsets_are_rejected_at_msh18() -> None:
    for name, code in (
        ("unknown_charset.hl7", ErrorCode.table_value_not_found),
        ("invalid_utf8.hl7", ErrorCode.data_type),
    ):
        raw = one(f"malformed/{name}")
        with pytest.raises(Hl7MessageRejected) as info:
            parse_body(raw, read_header(raw), CharacterSet.utf_8)
        assert info.value.hl7_error is code
        assert str(info.value.location) == "MSH^1^18"
        # The error text names no byte values from the message.
        assert "Bad" not in info.value.message


def test_line_endings_are_normalised() -> None:
    crlf = b"MSH|^~\\&|A|B|C|D|1||ADT^A08|X|P|2.5\r\nPID|1||7^^^^MR\r\n\r\n"
    parsed = parse_body(crlf, read_header(crlf), CharacterSet.ascii)
    assert parsed.text == "MSH|^~\\&|A|B|C|D|1||ADT^A08|X|P|2.5\rPID|1||7^^^^MR"
    assert [str(s[0]) for s in parsed.message] == ["MSH", "PID"]


@pytest.mark.parametrize(
    "text",
    ["plain", "a|b^c&d~e\\f", "line1\nline2", "tab\there", "Zoë Łukasiewicz", "\\E\\ looks escaped", ""],
)
def test_escape_round_trip(text: str) -> None:
    escaped = escape(text)
    for delimiter in "|^&~":
        assert delimiter not in escaped
    assert "\r" not in escaped
    assert "\n" not in escaped
    assert unescape(escaped) == text


def test_escape_sequences_from_the_standard() -> None:
    assert escape("a|b^c&d~e\\f") == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f"
    assert escape("x\ny") == "x\\.br\\y"
    assert unescape("\\H\\bold\\N\\ text") == "bold text"
    assert unescape("caf\\XE9\\") == "café"
    assert unescape("broken \\X4\\ and \\Zfoo\\ ok") == "broken  and  ok"
    assert unescape("unterminated \\F") == "unterminated "


def test_unescape_of_a_malformed_sequence_does_not_log(caplog: pytest.LogCaptureFixture) -> None:
    unescape("Secret\\Xzz\\Name\\", Delimiters())
    assert "Secret" not in caplog.text
