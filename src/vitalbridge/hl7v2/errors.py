"""HL7 v2 branches of the error tree (``vitalbridge.errors``; SPEC §4 HL7 v2, §7 last bullet).

    VitalbridgeError
    ├── ValidationFailed
    │   └── Hl7MessageError           a received message the hub will not apply (→ NAK with ERR)
    │       ├── Hl7MessageInvalid     AE  the content is wrong (missing PID-3, bad date …)
    │       └── Hl7MessageRejected    AR  not taken at all (type, version, facility, charset, syntax)
    └── UpstreamError
        └── Hl7DeliveryError          a message the hub sent was not accepted
            ├── Hl7TransportError     transient: connect failed, connection dropped, no ACK in time
            │   └── Hl7AckTimeout     transient: connected, sent, no ACK within the timeout
            ├── Hl7CommitError        transient: enhanced-mode CE (receiver could not store it)
            ├── Hl7BadAck             transient: the reply was not a readable ACK for our message
            └── Hl7Nak                permanent: the receiver refused the content
                ├── Hl7ApplicationError    AE
                └── Hl7ApplicationReject   AR (or enhanced-mode CR)

Retry policy reads ``transient`` from the class, never the message text (STYLE 6). Messages name
codes, control ids, hosts and ports — never patient data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from vitalbridge.errors import UpstreamError, ValidationFailed
from vitalbridge.hl7v2.codes import AckCode, ErrorCode


@dataclass(frozen=True)
class ErrorLocation:
    """HL7 ERL: where in the message the problem is, e.g. ``PID^1^3``."""

    segment: str
    sequence: int = 1
    position: int | None = None  # field number
    component: int | None = None

    def __str__(self) -> str:
        parts = [self.segment, str(self.sequence)]
        if self.position is not None:
            parts.append(str(self.position))
            if self.component is not None:
                parts += ["1", str(self.component)]
        return "^".join(parts)


@dataclass
class Hl7MessageError(ValidationFailed):
    """A received message the hub cannot apply; the ACK carries the class's code and an ERR segment."""

    hl7_error: ErrorCode = ErrorCode.internal_error
    location: ErrorLocation | None = None

    error_code: ClassVar[str] = "hl7_message_error"


class Hl7MessageInvalid(Hl7MessageError):
    """AE: the hub takes this kind of message, but this one's content is wrong."""

    hl7_ack_code = AckCode.AE.value


class Hl7MessageRejected(Hl7MessageError):
    """AR: the hub does not take this kind of message at all."""

    hl7_ack_code = AckCode.AR.value


def reject(message: str, code: ErrorCode, location: ErrorLocation | None = None) -> Hl7MessageRejected:
    return Hl7MessageRejected(message, hl7_error=code, location=location)


def invalid(message: str, code: ErrorCode, location: ErrorLocation | None = None) -> Hl7MessageInvalid:
    return Hl7MessageInvalid(message, hl7_error=code, location=location)


class Hl7DeliveryError(UpstreamError):
    transient: ClassVar[bool] = True
    error_code = "hl7_delivery_failed"


class Hl7TransportError(Hl7DeliveryError):
    error_code = "hl7_transport_error"


class Hl7AckTimeout(Hl7TransportError):
    error_code = "hl7_ack_timeout"


class Hl7CommitError(Hl7DeliveryError):
    error_code = "hl7_commit_error"


class Hl7BadAck(Hl7DeliveryError):
    error_code = "hl7_bad_ack"


@dataclass
class Hl7Nak(Hl7DeliveryError):
    """The receiver answered and refused the message; ``text`` is its MSA-3/ERR reason."""

    ack_code: AckCode = AckCode.AE
    text: str = ""
    error_codes: list[str] = field(default_factory=list)

    transient: ClassVar[bool] = False
    error_code: ClassVar[str] = "hl7_nak"


class Hl7ApplicationError(Hl7Nak):
    error_code = "hl7_application_error"


class Hl7ApplicationReject(Hl7Nak):
    error_code = "hl7_application_reject"
