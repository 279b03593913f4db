"""The HL7 message log (SPEC §4 HL7 v2, DESIGN principle 5 "nothing received is thrown away").

Every message received over MLLP is stored here, raw, in the same transaction as its effect and
before its ACK leaves; so is every message the hub sends. ``raw`` is PHI: it lives only in this
table and is shown through the API only to admins who ask for it.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Enum, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from vitalbridge.db.base import Base, new_id, utcnow
from vitalbridge.db.types import UTCDateTime


class Direction(enum.StrEnum):
    inbound = "in"  # received by the hub's MLLP listener
    outbound = "out"  # sent by the hub (ORU^R01 results)


class Hl7MessageStatus(enum.StrEnum):
    # inbound
    accepted = "accepted"  # applied; ACK AA
    error = "error"  # content refused; ACK AE
    rejected = "rejected"  # not taken (type, version, facility, charset, size, syntax); ACK AR
    duplicate = "duplicate"  # control id seen before from this sender: re-acknowledged, not reapplied
    # outbound
    delivered = "delivered"  # the peer answered AA (or CA)
    failed = "failed"  # the peer answered AE/AR/CR: it will not take this message
    unconfirmed = "unconfirmed"  # no usable ACK (timeout, connection lost): the peer may or may not have it


def _enum(e: type[enum.Enum]) -> Enum:
    return Enum(e, native_enum=False, length=16, validate_strings=True, values_callable=lambda x: [m.value for m in x])


class Hl7Message(Base):
    __tablename__ = "hl7_messages"
    __table_args__ = (
        Index("ix_hl7_messages_org_status_received", "organization_id", "status", "received_at"),
        Index("ix_hl7_messages_received_at", "received_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    direction: Mapped[Direction] = mapped_column(_enum(Direction))
    # When the hub received it (inbound) or sent it (outbound).
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # None when the sending facility matched no practice: the operator sees it through the CLI.
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=True, index=True
    )
    practice_id: Mapped[str | None] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"), nullable=True)
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patients.id", ondelete="SET NULL"), nullable=True)
    peer: Mapped[str] = mapped_column(String(100), default="")
    control_id: Mapped[str] = mapped_column(String(200), default="")
    message_type: Mapped[str] = mapped_column(String(32), default="")
    version: Mapped[str] = mapped_column(String(16), default="")
    sending_application: Mapped[str] = mapped_column(String(200), default="")
    sending_facility: Mapped[str] = mapped_column(String(200), default="")
    charset: Mapped[str] = mapped_column(String(32), default="")
    status: Mapped[Hl7MessageStatus] = mapped_column(_enum(Hl7MessageStatus))
    ack_code: Mapped[str | None] = mapped_column(String(2), nullable=True)
    ack_control_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # HL7 table 0357 code and the hub's own reason text (never a value copied from the message).
    error_code: Mapped[str | None] = mapped_column(String(8), nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    error_location: Mapped[str | None] = mapped_column(String(32), nullable=True)  # ERR-2, e.g. PID^1^3
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # An oversize message keeps only its MSH segment.
    raw_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    # SHA-256 of everything after MSH: tells a resend from a different message reusing a control id.
    body_digest: Mapped[str] = mapped_column(String(64), default="")
    # practice | sending application | control id, on the first copy only; NULLs do not collide.
    dedup_key: Mapped[str | None] = mapped_column(String(500), nullable=True, unique=True)
    duplicate_of_id: Mapped[str | None] = mapped_column(
        ForeignKey("hl7_messages.id", ondelete="SET NULL"), nullable=True
    )
