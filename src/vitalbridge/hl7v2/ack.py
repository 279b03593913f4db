"""General acknowledgment (ACK) messages: building ours, reading the peer's (HL7 v2.5.1 §2.9 original mode,
§2.14.1 ERR, §2.14.8 MSA; SPEC §4 HL7 v2: "answers ACK (AA) or NAK (AE/AR with the reason)").

An ACK mirrors the received message: MSA-2 = its MSH-10, sender and receiver swapped, the same
delimiters, version and character set, ``ACK^<event>^ACK`` in MSH-9 and a control id of its own.
A NAK adds MSA-3 (the reason) and an ERR segment: ERR-2 location, ERR-3 table 0357 code, ERR-4
severity; for v2.3/2.4 receivers, whose ERR has only ERR-1, the same facts go in ERR-1 as well;
for v2.7 and later, where MSA-3 is withdrawn, the reason goes in ERR-8 instead.
This module is the one converter from the error tree to the HL7 wire.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from vitalbridge.errors import VitalbridgeError
from vitalbridge.hl7v2.access import FieldReader, delimiters_of, segments
from vitalbridge.hl7v2.codes import AckCode, CharacterSet, ErrorCode, MessageType, Severity, Version
from vitalbridge.hl7v2.datatypes import format_dtm
from vitalbridge.hl7v2.errors import ErrorLocation, Hl7MessageError
from vitalbridge.hl7v2.escaping import DEFAULT_DELIMITERS, Delimiters, escape
from vitalbridge.hl7v2.parsing import Header, ParsedMessage

TABLE_0357 = "HL70357"


def new_control_id() -> str:
    """20 characters: fits MSH-10 (ST, 20) in every version from 2.3 on."""
    return uuid.uuid4().hex[:20].upper()


@dataclass(frozen=True)
class AckOutcome:
    """What to tell the sender: the code, and for a NAK the reason, code and location."""

    code: AckCode
    text: str = ""
    error: ErrorCode | None = None
    location: ErrorLocation | None = None

    @classmethod
    def accept(cls) -> AckOutcome:
        return cls(AckCode.AA)

    @classmethod
    def from_error(cls, exc: VitalbridgeError) -> AckOutcome:
        if isinstance(exc, Hl7MessageError):
            return cls(AckCode(exc.hl7_ack_code), exc.message, exc.hl7_error, exc.location)
        # Any other failure inside the hub is ours, not the sender's: AE 207, no internal detail.
        return cls(AckCode(exc.hl7_ack_code), "application internal error", ErrorCode.internal_error)


@dataclass(frozen=True)
class Identity:
    """How the hub names itself in MSH-3/MSH-4 when the sender left MSH-5/MSH-6 empty."""

    application: str = "VITALBRIDGE"
    facility: str = "VITALBRIDGE"


@dataclass(frozen=True)
class BuiltAck:
    control_id: str
    text: str
    charset: CharacterSet

    @property
    def payload(self) -> bytes:
        # Mirrored values were decoded with this charset, so they encode back; anything our own
        # text adds is ASCII.
        return self.text.encode(self.charset.codec, errors="replace")


def build_ack(
    header: Header | None,
    outcome: AckOutcome,
    *,
    identity: Identity = Identity(),
    charset: CharacterSet | None = None,
    now: datetime | None = None,
    control_id: str | None = None,
) -> BuiltAck:
    """The ACK for a message whose MSH is ``header`` (None when even MSH was unreadable)."""
    d = header.delimiters if header is not None else DEFAULT_DELIMITERS
    version = header.version if header is not None else None
    version_text = header.version_raw if header is not None and header.version_raw else Version.v2_5_1.value
    ctrl = control_id or new_control_id()
    charset = charset or CharacterSet.ascii
    when = format_dtm(now or datetime.now(UTC))
    event = escape(header.trigger_event, d) if header is not None else ""
    msh = [
        "MSH",
        d.encoding_characters,
        (header.receiving_application_raw if header else "") or escape(identity.application, d),
        (header.receiving_facility_raw if header else "") or escape(identity.facility, d),
        header.sending_application_raw if header else "",
        header.sending_facility_raw if header else "",
        when,
        "",
        d.component.join([MessageType.ACK.value, event, MessageType.ACK.value]),
        ctrl,
        (header.processing_id_raw if header else "") or "P",
        version_text,
    ]
    if header is not None and header.charset_raw:
        # Same character set as the message; a sender that named none gets none named back.
        msh += ["", "", "", "", "", charset.value]
    msa = ["MSA", outcome.code.value, escape(header.control_id, d) if header else ""]
    if outcome.text and (version is None or version.has_msa_text):
        msa.append(escape(outcome.text, d))
    segs = [d.field.join(msh), d.field.join(msa)]
    if outcome.error is not None:
        segs.append(_err_segment(outcome, d, version))
    return BuiltAck(control_id=ctrl, text="\r".join(segs) + "\r", charset=charset)


def _err_segment(outcome: AckOutcome, d: Delimiters, version: Version | None) -> str:
    assert outcome.error is not None
    fs, cs, ss = d.field, d.component, d.subcomponent
    loc = outcome.location
    code_text = outcome.error.text
    fields = ["ERR"]
    if version is not None and not version.has_err_location_fields:
        # v2.3/2.4 ERR-1 (ELD): segment^sequence^field^code&text&table.
        eld = [loc.segment, str(loc.sequence), str(loc.position or "")] if loc else ["", "", ""]
        fields.append(cs.join([*eld, ss.join([outcome.error.value, code_text, TABLE_0357])]))
    else:
        fields.append("")
    fields.append(str(loc).replace("^", cs) if loc else "")
    fields.append(cs.join([outcome.error.value, code_text, TABLE_0357]))
    fields.append(Severity.error.value)
    if version is not None and not version.has_msa_text and outcome.text:
        # From v2.7 MSA-3 is withdrawn; ERR-8 (user message) is where the reason goes.
        fields += ["", "", "", escape(outcome.text, d)]
    return fs.join(fields)


@dataclass(frozen=True)
class ReceivedAck:
    """A peer's answer to a message the hub sent."""

    code: AckCode
    acknowledged_control_id: str  # MSA-2
    control_id: str  # the ACK's own MSH-10
    text: str  # MSA-3, else the ERR texts
    error_codes: tuple[str, ...]


def read_ack(parsed: ParsedMessage) -> ReceivedAck:
    """Read MSA (and ERR) of an ACK. Raises ValueError when it is not an ACK the hub can use."""
    msa_segments = segments(parsed.message, "MSA")
    if not msa_segments:
        raise ValueError("reply has no MSA segment")
    d = delimiters_of(parsed.message)
    msa = FieldReader(msa_segments[0], d)
    try:
        code = AckCode(msa.value(1).upper())
    except ValueError:
        raise ValueError("MSA-1 is not an acknowledgment code") from None
    texts = [msa.value(3)] if msa.value(3) else []
    codes: list[str] = []
    for seg in segments(parsed.message, "ERR"):
        err = FieldReader(seg, d)
        if err.value(3):
            codes.append(err.value(3))
            if not texts and err.value(3, component=2):
                texts.append(err.value(3, component=2))
        elif err.value(1, component=4):
            codes.append(err.value(1, component=4))
        if err.value(8):
            texts.append(err.value(8))
    return ReceivedAck(
        code=code,
        acknowledged_control_id=msa.value(2),
        control_id=parsed.header.control_id,
        text="; ".join(texts),
        error_codes=tuple(codes),
    )
