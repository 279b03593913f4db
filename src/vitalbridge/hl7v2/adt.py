"""Domain mapping, read side: ADT message → patient demographics and merges (HL7 v2.5.1 chapter 3:
PID §3.4.2, MRG §3.4.3; SPEC §4 HL7 v2). Pure: no database, testable with a parsed message alone.

Control characters: HL7 text types (ST, and the XPN/XAD/XTN/CX components built from it) hold
printable characters only (v2.5.1 §2.A.74 ST). A line break written as a formatting escape
(``\\.br\\``) or a tab in a name, address or phone number becomes a space. Any other control
character — NUL, ESC, DEL, C1 controls, a CR/LF/tab inside an identifier — refuses the message
(AE 102 at the field): it is corruption on the sender's side, and silently deleting it could make
two different identifiers equal. The raw message is kept in the message log.

HL7 distinguishes an empty field ("nothing sent: keep what you have") from ``""`` ("present and
null: remove it"). ``KEEP`` carries the first meaning through to the registry; ``None`` the second.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from vitalbridge.hl7v2.access import FieldReader, delimiters_of, field_text, segments
from vitalbridge.hl7v2.codes import UPSERT_EVENTS, AdtEvent, ErrorCode, IdentifierType, MessageType, Sex
from vitalbridge.hl7v2.errors import ErrorLocation, invalid, reject
from vitalbridge.hl7v2.escaping import unescape
from vitalbridge.hl7v2.parsing import Header

# C0 controls, DEL and C1 controls; in text fields tab and line feed are allowed (they become spaces).
_CONTROL_ANY = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# PID fields the hub reads: identifiers (exact values) and the text fields.
_PID_IDENTIFIER_FIELDS = (3,)
_PID_TEXT_FIELDS = (5, 7, 8, 11, 13, 40)


class Keep(enum.Enum):
    """The field was not sent: leave the stored value alone."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True)
class Identifier:
    """One CX repetition of PID-3 / MRG-1."""

    value: str
    type_code: str  # CX-5, table 0203 (MR, PI, SS …); may be empty in v2.3 feeds
    authority: str  # CX-4: the assigning authority's namespace id, else its universal id

    def as_json(self) -> dict[str, str]:
        return {"value": self.value, "type": self.type_code, "system": self.authority}


@dataclass(frozen=True)
class Demographics:
    """What PID says about one patient. ``mrn`` is the hub's key within the practice."""

    identifiers: tuple[Identifier, ...]
    mrn: Identifier
    family_name: str | Keep
    given_name: str | Keep
    birth_date: date | Keep | None
    gender: str | Keep | None
    address: dict[str, Any] | Keep | None
    phone: str | Keep | None


@dataclass(frozen=True)
class Merge:
    """One A40 patient group: fold the patient known by ``prior`` into ``survivor``."""

    survivor: Demographics
    prior: tuple[Identifier, ...]
    prior_mrn: Identifier


def _loc(segment: str, position: int, sequence: int = 1) -> ErrorLocation:
    return ErrorLocation(segment, sequence, position)


def _refuse_controls(
    reader: FieldReader, segment_id: str, positions: tuple[int, ...], sequence: int, *, text: bool
) -> None:
    pattern = _CONTROL_IN_TEXT if text else _CONTROL_ANY
    for position in positions:
        found = pattern.search(unescape(field_text(reader.segment, position), reader.d))
        if found is not None:
            # The code point names the problem without echoing the value.
            raise invalid(
                f"{segment_id}-{position} contains the control character U+{ord(found.group()):04X}; "
                "HL7 text values hold printable characters only",
                ErrorCode.data_type,
                _loc(segment_id, position, sequence),
            )


def _one_line(text: str) -> str:
    """A ``\\.br\\`` line break or a tab inside a name, address or phone number reads as a space."""
    return text.replace("\n", " ").replace("\t", " ")


def classify(header: Header) -> AdtEvent:
    """The ADT event to apply, or AR 200/201 for anything the hub does not take."""
    if header.message_type != MessageType.ADT.value:
        raise reject(
            f"unsupported message type {header.message_type[:8]!r}: this interface accepts ADT",
            ErrorCode.unsupported_message_type,
            ErrorLocation("MSH", 1, 9, 1),
        )
    try:
        event = AdtEvent(header.trigger_event)
    except ValueError:
        raise reject(
            f"unsupported ADT event {header.trigger_event[:8]!r}: accepted events are A01, A04, A08, A31, A40",
            ErrorCode.unsupported_event,
            ErrorLocation("MSH", 1, 9, 2),
        ) from None
    return event


def read_identifiers(reader: FieldReader, position: int) -> tuple[Identifier, ...]:
    out: list[Identifier] = []
    for rep in reader.structured(position):
        comps = [*rep, [], [], [], [], []]
        value = (comps[0] or [""])[0].strip()
        if not value or value == '""':
            continue
        # CX-4 is an HD: namespace id & universal id & universal id type.
        hd = [s.strip() for s in comps[3]] + ["", ""]
        authority = hd[0] or hd[1]
        type_code = (comps[4] or [""])[0].strip().upper()
        out.append(Identifier(value=value, type_code=type_code, authority=authority[:255]))
    return tuple(out)


def pick_mrn(identifiers: tuple[Identifier, ...]) -> Identifier | None:
    """The MR-typed identifier; failing that the first untyped one (v2.3 feeds often omit CX-5).

    A typed identifier of another kind (SS, DL, PI …) is never taken as the MRN: keying patients
    on a social security or driver's licence number would merge strangers.
    """
    for ident in identifiers:
        if ident.type_code == IdentifierType.MR.value:
            return ident
    for ident in identifiers:
        if not ident.type_code:
            return ident
    return None


def _text(reader: FieldReader, position: int, getter: Any) -> Any:
    if reader.is_null(position):
        return None
    if not reader.present(position):
        return KEEP
    return getter()


def _birth_date(reader: FieldReader, sequence: int) -> date | Keep | None:
    def get() -> date | None:
        raw = reader.value(7)
        digits = raw[:8]
        if len(digits) < 8 or not digits.isdigit():
            raise invalid(
                "PID-7 date of birth must be a full date (YYYYMMDD)", ErrorCode.data_type, _loc("PID", 7, sequence)
            )
        try:
            return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
        except ValueError:
            raise invalid(
                "PID-7 date of birth is not a calendar date", ErrorCode.data_type, _loc("PID", 7, sequence)
            ) from None

    result: date | Keep | None = _text(reader, 7, get)
    return result


def _gender(reader: FieldReader, sequence: int) -> str | Keep | None:
    def get() -> str:
        code = reader.value(8).upper()
        try:
            return Sex(code).fhir_gender
        except ValueError:
            raise invalid(
                "PID-8 administrative sex is not in HL7 table 0001",
                ErrorCode.table_value_not_found,
                _loc("PID", 8, sequence),
            ) from None

    result: str | Keep | None = _text(reader, 8, get)
    return result


def _address(reader: FieldReader) -> dict[str, Any] | Keep | None:
    def get() -> dict[str, Any] | None:
        reps = reader.repetitions(11)
        # Prefer the home address (XAD-7 "H"), else the first one sent.
        chosen = next((r for r in reps if len(r) > 6 and r[6].upper() == "H"), reps[0] if reps else [])
        c = [*map(_one_line, chosen), "", "", "", "", "", "", ""]
        address: dict[str, Any] = {
            "line": [part for part in (c[0].strip(), c[1].strip()) if part],
            "city": c[2].strip(),
            "state": c[3].strip(),
            "postalCode": c[4].strip(),
            "country": c[5].strip(),
        }
        return address if any(address.values()) else None

    result: dict[str, Any] | Keep | None = _text(reader, 11, get)
    return result


def _phone(reader: FieldReader) -> str | Keep | None:
    # v2.7 added PID-40 (patient telecommunication information) and kept PID-13 for backward
    # compatibility; a sender that fills only PID-40 is read from there.
    position = 40 if not reader.present(13) and reader.present(40) else 13

    def get() -> str | None:
        reps = reader.repetitions(position)
        # Prefer the primary residence number (XTN-2 "PRN"), else the first one sent.
        chosen = next((r for r in reps if len(r) > 1 and r[1].upper() == "PRN"), reps[0] if reps else [])
        c = [*map(_one_line, chosen), "", "", "", "", "", "", "", ""]
        number = c[0].strip()
        if not number:
            # v2.5 structured form: country code (5), area/city (6), local number (7), extension (8).
            number = " ".join(p for p in (c[4].strip(), c[5].strip(), c[6].strip()) if p)
            if c[7].strip():
                number += f" x{c[7].strip()}"
        return number[:64] or None

    result: str | Keep | None = _text(reader, position, get)
    return result


def _name(reader: FieldReader, sequence: int) -> tuple[str, str]:
    reps = reader.repetitions(5)
    # Prefer the legal name (XPN-7 "L"), else the first one sent.
    chosen = next((r for r in reps if len(r) > 6 and r[6].upper() == "L"), reps[0] if reps else [])
    c = [*map(_one_line, chosen), "", "", ""]
    family = c[0].strip()
    given = " ".join(p for p in (c[1].strip(), c[2].strip()) if p)
    if not family and not given:
        raise invalid("PID-5 patient name is required", ErrorCode.required_field_missing, _loc("PID", 5, sequence))
    return family[:200], given[:200]


def read_pid(segment: Any, message: Any, sequence: int = 1) -> Demographics:
    reader = FieldReader(segment, delimiters_of(message))
    _refuse_controls(reader, "PID", _PID_IDENTIFIER_FIELDS, sequence, text=False)
    _refuse_controls(reader, "PID", _PID_TEXT_FIELDS, sequence, text=True)
    identifiers = read_identifiers(reader, 3)
    if not identifiers:
        raise invalid(
            "PID-3 patient identifier list is required", ErrorCode.required_field_missing, _loc("PID", 3, sequence)
        )
    mrn = pick_mrn(identifiers)
    if mrn is None:
        raise invalid(
            "PID-3 has no medical record number (an identifier of type MR)",
            ErrorCode.required_field_missing,
            _loc("PID", 3, sequence),
        )
    if len(mrn.value) > 64:
        raise invalid(
            "PID-3 medical record number is longer than 64 characters", ErrorCode.data_type, _loc("PID", 3, sequence)
        )
    family, given = _name(reader, sequence)
    return Demographics(
        identifiers=identifiers,
        mrn=mrn,
        family_name=family,
        given_name=given,
        birth_date=_birth_date(reader, sequence),
        gender=_gender(reader, sequence),
        address=_address(reader),
        phone=_phone(reader),
    )


def read_patient(message: Any) -> Demographics:
    """The patient of an A01/A04/A08/A31."""
    pids = segments(message, "PID")
    if not pids:
        raise invalid("PID segment is required", ErrorCode.segment_sequence, ErrorLocation("PID", 1))
    return read_pid(pids[0], message)


def read_merges(message: Any) -> list[Merge]:
    """The patient groups of an A40: each PID (the survivor) followed by its MRG (the prior patient)."""
    d = delimiters_of(message)
    merges: list[Merge] = []
    current: Any = None
    pid_seq = 0
    for seg in message:
        seg_id = str(seg[0]) if len(seg) else ""
        if seg_id == "PID":
            pid_seq += 1
            current = read_pid(seg, message, pid_seq)
        elif seg_id == "MRG":
            if current is None:
                raise invalid("MRG must follow its PID segment", ErrorCode.segment_sequence, ErrorLocation("MRG", 1))
            reader = FieldReader(seg, d)
            _refuse_controls(reader, "MRG", (1,), pid_seq, text=False)
            prior = read_identifiers(reader, 1)
            prior_mrn = pick_mrn(prior)
            if prior_mrn is None:
                raise invalid(
                    "MRG-1 prior patient identifier list is required",
                    ErrorCode.required_field_missing,
                    _loc("MRG", 1, pid_seq),
                )
            merges.append(Merge(survivor=current, prior=prior, prior_mrn=prior_mrn))
            current = None
    if not merges:
        if pid_seq == 0:
            raise invalid("PID segment is required", ErrorCode.segment_sequence, ErrorLocation("PID", 1))
        raise invalid("MRG segment is required for A40", ErrorCode.segment_sequence, ErrorLocation("MRG", 1))
    return merges


def is_upsert(event: AdtEvent) -> bool:
    return event in UPSERT_EVENTS
