"""Parsing layer: one frame's bytes → a decoded, parsed HL7 v2 message (HL7 v2.5.1 §2.5, §2.14.9).

Two steps, so that a NAK can be built even for a message that cannot be decoded:

1. ``read_header(raw)`` reads MSH straight from the bytes. Every supported character set agrees
   with ASCII there, so MSH-9/10/12/18 are readable before the charset is known.
2. ``parse_body(raw, header, …)`` decodes the bytes by MSH-18 and parses them with python-hl7.

Errors are ``Hl7MessageRejected`` (AR) carrying the HL7 error code and location for the ERR segment.
When MSH is readable enough to find MSH-10 but not valid, ``HeaderRejected.partial`` carries what
was read, so the NAK's MSA-2 still names the message (v2.5.1 §2.9.2: the sender matches ACKs by it).

Before MSH, a receiver tolerates what files and editors put there (v2.5.1 §2.5: a message *begins*
with MSH; nothing before it is content): leading whitespace and blank lines in any of CR, LF, CRLF,
and a UTF-8 byte-order mark, which Windows tools write at the start of a UTF-8 file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import hl7

from vitalbridge.hl7v2.codes import CharacterSet, ErrorCode, Version
from vitalbridge.hl7v2.errors import ErrorLocation, Hl7MessageRejected, reject
from vitalbridge.hl7v2.escaping import Delimiters, unescape

_LEADING_WS = b" \t\r\n"
UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
MAX_CONTROL_ID = 199  # MSH-10 is ST(199) from v2.7; earlier versions allow 20


_CONTROL_CHARS = dict.fromkeys([*range(0x20), 0x7F])


def clean(text: str) -> str:
    """Drop control characters: they are invalid in these HL7 types, and PostgreSQL refuses NUL in text."""
    return text.translate(_CONTROL_CHARS).strip()


def _msh(position: int, component: int | None = None) -> ErrorLocation:
    return ErrorLocation("MSH", 1, position, component)


def strip_preamble(raw: bytes) -> bytes:
    """``raw`` without leading whitespace/blank lines and UTF-8 byte-order marks, in any order."""
    while True:
        body = raw.lstrip(_LEADING_WS)
        if body.startswith(UTF8_BOM):
            body = body[len(UTF8_BOM) :]
        if body == raw:
            return body
        raw = body


@dataclass(frozen=True)
class Header:
    """The MSH fields the hub routes, acknowledges and stores by.

    ``*_raw`` values are kept exactly as sent (delimiters included) so the ACK can mirror them.
    """

    delimiters: Delimiters
    sending_application_raw: str
    sending_facility_raw: str
    receiving_application_raw: str
    receiving_facility_raw: str
    message_type: str  # MSH-9.1, e.g. "ADT"
    trigger_event: str  # MSH-9.2, e.g. "A08"
    structure: str  # MSH-9.3, e.g. "ADT_A01" (absent before v2.3.1)
    control_id: str  # MSH-10
    processing_id_raw: str  # MSH-11
    version_raw: str  # MSH-12.1 as sent
    charset_raw: str  # MSH-18, first repetition

    @property
    def type_label(self) -> str:
        """``ADT^A08`` — safe for logs, metrics and the audit trail."""
        return f"{self.message_type}^{self.trigger_event}" if self.trigger_event else self.message_type

    @property
    def facility_namespace(self) -> str:
        """MSH-4.1, the HD namespace id the hub maps to a practice."""
        return self._first_component(self.sending_facility_raw)

    @property
    def application_namespace(self) -> str:
        return self._first_component(self.sending_application_raw)

    @property
    def version(self) -> Version | None:
        try:
            return Version(self.version_raw)
        except ValueError:
            return None

    def _first_component(self, raw: str) -> str:
        return clean(unescape(raw.split(self.delimiters.component)[0], self.delimiters))


@dataclass
class HeaderRejected(Hl7MessageRejected):
    """MSH is not valid, but ``partial`` (when not None) is what could be read of it, MSH-10 included."""

    partial: Header | None = None


def header_from_segment(segment: str) -> Header:
    """Read MSH from its text. ``segment`` starts with ``MSH`` and holds no segment terminator."""
    if len(segment) < 8 or not segment.startswith("MSH"):
        raise reject("not an HL7 v2 message: the first segment must be MSH", ErrorCode.segment_sequence, _msh(1))
    sep = segment[3]
    if sep.isalnum() or sep.isspace():
        raise reject("MSH-1 field separator is not valid", ErrorCode.data_type, _msh(1))
    fields = segment.split(sep)
    d = Delimiters.from_header(sep, fields[1])
    if len(fields[1]) < 2 or len(set(fields[1][:4] + sep)) != len(fields[1][:4]) + 1:
        # The field separator still splits MSH, so MSH-10 can be read for the NAK's MSA-2.
        raise HeaderRejected(
            "MSH-2 encoding characters are not valid",
            hl7_error=ErrorCode.data_type,
            location=_msh(2),
            partial=_header(fields, Delimiters(field=sep)),
        )
    return _header(fields, d)


def _header(fields: list[str], d: Delimiters) -> Header:

    def msh(n: int) -> str:
        # MSH-1 is the separator itself, so MSH-n is fields[n - 1].
        return fields[n - 1] if n - 1 < len(fields) else ""

    def comps(raw: str) -> list[str]:
        first_rep = raw.split(d.repetition)[0]
        return [clean(unescape(c, d)) for c in first_rep.split(d.component)]

    msg_type = [*comps(msh(9)), "", "", ""]
    version = comps(msh(12))[0]
    charset = clean(msh(18).split(d.repetition)[0])
    return Header(
        delimiters=d,
        sending_application_raw=msh(3),
        sending_facility_raw=msh(4),
        receiving_application_raw=msh(5),
        receiving_facility_raw=msh(6),
        message_type=msg_type[0].upper(),
        trigger_event=msg_type[1].upper(),
        structure=msg_type[2].upper(),
        control_id=clean(unescape(msh(10), d)),
        processing_id_raw=msh(11),
        version_raw=version,
        charset_raw=charset,
    )


def _first_segment(raw: bytes) -> bytes:
    body = strip_preamble(raw)
    ends = [i for i in (body.find(b"\r"), body.find(b"\n")) if i >= 0]
    return body[: min(ends)] if ends else body


def read_header(raw: bytes) -> Header:
    """MSH from undecoded bytes (Latin-1 maps each byte to one character, so nothing can fail)."""
    body = raw.lstrip(_LEADING_WS)
    if body.startswith(_UTF16_BOMS):
        _refuse_utf16(body)
    return header_from_segment(_first_segment(raw).decode("latin-1"))


def _refuse_utf16(body: bytes) -> None:
    """UTF-16 is no MSH-18 character set (delimiters must be single bytes); name the message anyway."""
    text = body.decode("utf-16", errors="replace")
    partial: Header | None
    try:
        partial = header_from_segment(normalise_segments(text.lstrip("\ufeff")).split("\r", 1)[0])
    except Hl7MessageRejected:
        partial = None
    raise HeaderRejected(
        "the message is UTF-16 encoded; send it as UTF-8 (MSH-18 UNICODE UTF-8) or another MSH-18 character set",
        hl7_error=ErrorCode.data_type,
        location=_msh(18),
        partial=partial,
    )


def check_header(header: Header) -> None:
    """What every message needs before the hub looks further: a control id and a version it speaks."""
    if not header.control_id:
        raise reject("MSH-10 message control id is required", ErrorCode.required_field_missing, _msh(10))
    if len(header.control_id) > MAX_CONTROL_ID:
        raise reject(f"MSH-10 is longer than {MAX_CONTROL_ID} characters", ErrorCode.data_type, _msh(10))
    if header.version is None:
        raise reject(
            "unsupported version in MSH-12; accepted versions are 2.3 to 2.8.2 ("
            + ", ".join(v.value for v in Version)
            + ")",
            ErrorCode.unsupported_version,
            _msh(12),
        )


def first_segment(raw: bytes) -> bytes:
    """The MSH segment's bytes (what is kept of an oversize message)."""
    return _first_segment(raw)


def character_set(header: Header, default: CharacterSet) -> CharacterSet:
    if not header.charset_raw:
        return default
    try:
        return CharacterSet(header.charset_raw.upper())
    except ValueError:
        raise reject(
            "unsupported character set in MSH-18; use ASCII, 8859/1 or UNICODE UTF-8",
            ErrorCode.table_value_not_found,
            _msh(18),
        ) from None


@dataclass(frozen=True)
class ParsedMessage:
    header: Header
    charset: CharacterSet
    text: str  # decoded, segments separated by CR
    message: Any  # hl7.Message (python-hl7 ships no type information)


def normalise_segments(text: str) -> str:
    """Segments end with CR in the standard; files and some senders use LF or CRLF."""
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    return "\r".join(line for line in lines if line.strip())


def parse_body(raw: bytes, header: Header, default_charset: CharacterSet) -> ParsedMessage:
    charset = character_set(header, default_charset)
    raw = strip_preamble(raw)
    try:
        text = raw.decode(charset.codec)
    except UnicodeDecodeError as exc:
        raise reject(
            f"the message bytes are not valid {charset.value} (MSH-18) at byte {exc.start}",
            ErrorCode.data_type,
            _msh(18),
        ) from None
    text = normalise_segments(text)
    header = header_from_segment(text.split("\r", 1)[0])
    try:
        message = hl7.parse(text)
    except (hl7.ParseException, IndexError, ValueError, AssertionError):
        raise reject("the message could not be parsed", ErrorCode.data_type) from None
    return ParsedMessage(header=header, charset=charset, text=text, message=message)


def parse(raw: bytes, default_charset: CharacterSet = CharacterSet.utf_8) -> ParsedMessage:
    """Header and body at once, without ``check_header``: for reading a peer's ACK, whatever its version."""
    return parse_body(raw, read_header(raw), default_charset)
