"""HL7 v2 code tables the hub speaks (HL7 v2.5.1 chapter 2 and 3; SPEC §4 HL7 v2, §7).

Each enum is one HL7 table; the table number is in the class docstring so a reader can look it up.
"""

from __future__ import annotations

import enum


class AckCode(enum.StrEnum):
    """HL7 table 0008, acknowledgment code (MSA-1)."""

    AA = "AA"  # original mode: application accept — the message was processed
    AE = "AE"  # original mode: application error — the content was wrong; resending it unchanged fails again
    AR = "AR"  # original mode: application reject — unsupported type/version/facility, or unreadable
    CA = "CA"  # enhanced mode: commit accept — stored by the receiver, processing follows
    CE = "CE"  # enhanced mode: commit error — the receiver could not store it; try again
    CR = "CR"  # enhanced mode: commit reject — the receiver will never take it


class ErrorCode(enum.StrEnum):
    """HL7 table 0357, message error condition codes (ERR-3)."""

    accepted = "0"  # message accepted
    segment_sequence = "100"  # a required segment is missing or out of order
    required_field_missing = "101"  # a required field is missing from a segment
    data_type = "102"  # a field's value does not fit its data type (e.g. a malformed date)
    table_value_not_found = "103"  # a coded value is not in the table the field uses
    unsupported_message_type = "200"  # MSH-9.1 is not a type the receiver handles
    unsupported_event = "201"  # MSH-9.2 is not an event the receiver handles
    unsupported_processing_id = "202"  # MSH-11 is not accepted
    unsupported_version = "203"  # MSH-12 is not a version the receiver handles
    unknown_key = "204"  # the record the message refers to is unknown (or no longer current)
    duplicate_key = "205"  # the key (e.g. a control id) is already in use
    record_locked = "206"  # the record cannot be changed now
    internal_error = "207"  # the receiver failed; not the sender's fault

    @property
    def text(self) -> str:
        return _ERROR_TEXT[self]


_ERROR_TEXT = {
    ErrorCode.accepted: "Message accepted",
    ErrorCode.segment_sequence: "Segment sequence error",
    ErrorCode.required_field_missing: "Required field missing",
    ErrorCode.data_type: "Data type error",
    ErrorCode.table_value_not_found: "Table value not found",
    ErrorCode.unsupported_message_type: "Unsupported message type",
    ErrorCode.unsupported_event: "Unsupported event code",
    ErrorCode.unsupported_processing_id: "Unsupported processing id",
    ErrorCode.unsupported_version: "Unsupported version id",
    ErrorCode.unknown_key: "Unknown key identifier",
    ErrorCode.duplicate_key: "Duplicate key identifier",
    ErrorCode.record_locked: "Application record locked",
    ErrorCode.internal_error: "Application internal error",
}


class Severity(enum.StrEnum):
    """HL7 table 0516, error severity (ERR-4)."""

    error = "E"  # the message was not (fully) processed
    warning = "W"  # processed, with a remark
    information = "I"  # processed; informational note only


class CharacterSet(enum.StrEnum):
    """HL7 table 0211, alternate character sets (MSH-18), limited to those with a Python codec.

    All of them agree with ASCII on the delimiters and the MSH segment, which is what lets the
    hub read MSH-18 from the raw bytes before it knows how to decode the rest.
    """

    ascii = "ASCII"  # 7-bit ASCII, the standard's default when MSH-18 is empty
    latin_1 = "8859/1"  # ISO 8859-1, Western European
    latin_2 = "8859/2"  # ISO 8859-2, Central European
    latin_3 = "8859/3"  # ISO 8859-3, South European
    latin_4 = "8859/4"  # ISO 8859-4, North European
    cyrillic = "8859/5"  # ISO 8859-5
    arabic = "8859/6"  # ISO 8859-6
    greek = "8859/7"  # ISO 8859-7
    hebrew = "8859/8"  # ISO 8859-8
    latin_5 = "8859/9"  # ISO 8859-9, Turkish
    latin_9 = "8859/15"  # ISO 8859-15, Western European with the euro sign
    utf_8 = "UNICODE UTF-8"  # UTF-8 (the value v2.5 onwards uses)

    @property
    def codec(self) -> str:
        return _CODECS[self]


_CODECS = {
    CharacterSet.ascii: "ascii",
    CharacterSet.latin_1: "iso8859-1",
    CharacterSet.latin_2: "iso8859-2",
    CharacterSet.latin_3: "iso8859-3",
    CharacterSet.latin_4: "iso8859-4",
    CharacterSet.cyrillic: "iso8859-5",
    CharacterSet.arabic: "iso8859-6",
    CharacterSet.greek: "iso8859-7",
    CharacterSet.hebrew: "iso8859-8",
    CharacterSet.latin_5: "iso8859-9",
    CharacterSet.latin_9: "iso8859-15",
    CharacterSet.utf_8: "utf-8",
}


class Version(enum.StrEnum):
    """HL7 table 0104, version id (MSH-12.1): the versions the hub accepts.

    HL7 v2 is backward compatible (v2.8.2 §2.8.1 "rules for building messages"): later versions
    only add fields and segments at the end and never change the meaning of PID-3/5/7/8/11/13,
    MRG-1 or MSH, so a 2.6 to 2.8.2 ADT message reads exactly like a 2.5.1 one. 2.1 and 2.2 are
    refused: their PID-3 is a single internal id and PID-2 carries the external one.
    """

    v2_3 = "2.3"
    v2_3_1 = "2.3.1"
    v2_4 = "2.4"
    v2_5 = "2.5"
    v2_5_1 = "2.5.1"  # the reference version; what the hub sends
    v2_6 = "2.6"
    v2_7 = "2.7"  # MSA-3 withdrawn: the reason travels in ERR-8
    v2_7_1 = "2.7.1"
    v2_8 = "2.8"
    v2_8_1 = "2.8.1"
    v2_8_2 = "2.8.2"

    @property
    def has_err_location_fields(self) -> bool:
        """v2.5 split ERR into ERR-2 location / ERR-3 code / ERR-4 severity; earlier versions use ERR-1 (ELD)."""
        return self not in (Version.v2_3, Version.v2_3_1, Version.v2_4)

    @property
    def has_msa_text(self) -> bool:
        """MSA-3 (text message) exists up to 2.6; from 2.7 it is withdrawn and ERR-8 carries the text."""
        return self not in _MSA3_WITHDRAWN


_MSA3_WITHDRAWN = frozenset({Version.v2_7, Version.v2_7_1, Version.v2_8, Version.v2_8_1, Version.v2_8_2})


class MessageType(enum.StrEnum):
    """HL7 table 0076, message type (MSH-9.1): the ones the hub reads or writes."""

    ADT = "ADT"  # admit/discharge/transfer: the patient feed the hub accepts
    ACK = "ACK"  # general acknowledgment
    ORU = "ORU"  # unsolicited observation result: what the hub sends for hl7v2 practices


class AdtEvent(enum.StrEnum):
    """HL7 table 0003, event type (MSH-9.2): the ADT events the hub processes."""

    A01 = "A01"  # admit/visit notification: upsert the patient
    A04 = "A04"  # register a patient: upsert the patient
    A08 = "A08"  # update patient information: upsert the patient
    A31 = "A31"  # update person information: upsert the patient
    A40 = "A40"  # merge patient — patient identifier list: fold MRG-1's patient into PID-3's


UPSERT_EVENTS = frozenset({AdtEvent.A01, AdtEvent.A04, AdtEvent.A08, AdtEvent.A31})


class Sex(enum.StrEnum):
    """HL7 table 0001, administrative sex (PID-8), and the FHIR gender each maps to."""

    F = "F"  # female
    M = "M"  # male
    O = "O"  # other  # noqa: E741 - the code is the letter O
    U = "U"  # unknown
    A = "A"  # ambiguous
    N = "N"  # not applicable
    X = "X"  # non-binary (used by later versions and US feeds)

    @property
    def fhir_gender(self) -> str:
        return _GENDER[self]


_GENDER = {
    Sex.F: "female",
    Sex.M: "male",
    Sex.O: "other",
    Sex.U: "unknown",
    Sex.A: "other",
    Sex.N: "unknown",
    Sex.X: "other",
}


class IdentifierType(enum.StrEnum):
    """HL7 table 0203, identifier type (CX-5): the ones the hub reads or writes."""

    MR = "MR"  # medical record number: the hub's key for a patient within a practice
    PI = "PI"  # patient internal identifier: the hub writes the EHR's patient id with this type
    PT = "PT"  # patient external identifier


class ResultStatus(enum.StrEnum):
    """HL7 table 0085 / 0123, observation and order result status (OBX-11, OBR-25)."""

    final = "F"  # final results; device readings are final when measured
