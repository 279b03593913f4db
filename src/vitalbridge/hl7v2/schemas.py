"""API shapes for the HL7 message log (``GET /api/v1/hl7/messages/``; SPEC §4 HL7 v2, §9 PHI discipline)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from vitalbridge.hl7v2.codes import CharacterSet
from vitalbridge.hl7v2.models import Direction, Hl7Message, Hl7MessageStatus


class Hl7MessageOut(BaseModel):
    id: str
    direction: Direction
    received_at: datetime
    practice_id: str | None
    patient_id: str | None
    peer: str
    control_id: str
    message_type: str
    version: str
    sending_application: str
    sending_facility: str
    charset: str
    status: Hl7MessageStatus
    ack_code: str | None
    ack_control_id: str | None
    error_code: str | None
    error: str | None
    error_location: str | None
    size: int
    raw_truncated: bool
    duplicate_of_id: str | None
    # PHI: only for admins who ask (?include_raw=true). Segments are separated by "\r".
    raw: str | None = None

    @classmethod
    def of(cls, row: Hl7Message, *, include_raw: bool = False) -> Hl7MessageOut:
        out = cls(
            id=row.id,
            direction=row.direction,
            received_at=row.received_at,
            practice_id=row.practice_id,
            patient_id=row.patient_id,
            peer=row.peer,
            control_id=row.control_id,
            message_type=row.message_type,
            version=row.version,
            sending_application=row.sending_application,
            sending_facility=row.sending_facility,
            charset=row.charset,
            status=row.status,
            ack_code=row.ack_code,
            ack_control_id=row.ack_control_id,
            error_code=row.error_code,
            error=row.error,
            error_location=row.error_location,
            size=row.size,
            raw_truncated=row.raw_truncated,
            duplicate_of_id=row.duplicate_of_id,
        )
        if include_raw:
            out.raw = decode_raw(row)
        return out


def decode_raw(row: Hl7Message) -> str:
    try:
        codec = CharacterSet(row.charset).codec
    except ValueError:
        codec = "latin-1"
    return row.raw.decode(codec, errors="replace")


class Hl7MessagePage(BaseModel):
    count: int
    messages: list[Hl7MessageOut]
    # Pass as ?before= to get the next (older) page; None when this is the last page.
    next_before: datetime | None
