"""Sending ORU^R01 results over MLLP and classifying the answer (SPEC §7 last bullet, "with ACK handling").

``send_oru`` is transport and classification only. ``deliver_oru`` is what the delivery worker
calls for a practice whose channel is ``hl7v2``: it sends to the practice's interface, stores the
message and the answer in ``hl7_messages`` and writes the audit entry.

    AA, CA                 → ``OruDelivered``
    AE                     → ``Hl7ApplicationError``   permanent (``.text`` is the receiver's reason)
    AR, CR                 → ``Hl7ApplicationReject``  permanent
    CE                     → ``Hl7CommitError``        transient
    no ACK in time         → ``Hl7AckTimeout``         transient
    connect/reset/closed   → ``Hl7TransportError``     transient
    reply not an ACK       → ``Hl7BadAck``             transient

A transient failure means the receiver may or may not have the message: the retry sends the same
bytes with the same control id, so a receiver that dedupes by MSH-10 does not file it twice.
``.text`` on a NAK is the receiver's free text and may name the patient: store it, never log it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from vitalbridge import audit
from vitalbridge.db.base import utcnow
from vitalbridge.errors import ConfigurationError, NotFound
from vitalbridge.hl7v2 import metrics
from vitalbridge.hl7v2.ack import ReceivedAck, read_ack
from vitalbridge.hl7v2.codes import AckCode, MessageType, Version
from vitalbridge.hl7v2.errors import (
    Hl7ApplicationError,
    Hl7ApplicationReject,
    Hl7BadAck,
    Hl7CommitError,
    Hl7DeliveryError,
    Hl7MessageError,
    Hl7Nak,
)
from vitalbridge.hl7v2.mllp.client import MllpClient
from vitalbridge.hl7v2.models import Direction, Hl7Message, Hl7MessageStatus
from vitalbridge.hl7v2.oru import BuiltOru
from vitalbridge.hl7v2.parsing import parse
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Practice

log = structlog.get_logger("vitalbridge.hl7v2")


@dataclass(frozen=True)
class OruDelivered:
    ack_code: AckCode  # AA, or CA from an enhanced-mode receiver
    ack_control_id: str
    text: str = ""


def read_reply(frame: bytes) -> ReceivedAck | None:
    """The ACK in a reply frame, or None when the frame is not a readable ACK."""
    try:
        return read_ack(parse(frame))
    except (Hl7MessageError, ValueError):
        return None


def answers(control_id: str) -> Callable[[bytes], bool]:
    def is_reply(frame: bytes) -> bool:
        ack = read_reply(frame)
        # Unreadable replies are taken (and then refused as a bad ACK) rather than waited past;
        # only a readable ACK for a different message is skipped as stale.
        return ack is None or ack.acknowledged_control_id in ("", control_id)

    return is_reply


def classify_ack(ack: ReceivedAck | None, control_id: str, address: str) -> OruDelivered:
    """Turn the receiver's answer into a result or an error-tree exception."""
    if ack is None:
        raise Hl7BadAck(f"{address} answered with something that is not an HL7 ACK")
    codes = ",".join(ack.error_codes)[:40]
    suffix = f" (ERR {codes})" if codes else ""
    if ack.code in (AckCode.AA, AckCode.CA):
        if ack.acknowledged_control_id != control_id:
            raise Hl7BadAck(f"{address} answered {ack.code.value} without naming the message (MSA-2)")
        return OruDelivered(ack.code, ack.control_id, ack.text)
    if ack.code is AckCode.CE:
        raise Hl7CommitError(f"{address} answered CE: it could not store the message{suffix}")
    nak = Hl7ApplicationError if ack.code is AckCode.AE else Hl7ApplicationReject
    error: Hl7Nak = nak(
        f"{address} answered {ack.code.value}{suffix}",
        ack_code=ack.code,
        text=ack.text,
        error_codes=list(ack.error_codes),
    )
    raise error


async def send_oru(
    oru: BuiltOru,
    *,
    host: str | None = None,
    port: int | None = None,
    client: MllpClient | None = None,
    timeout: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> OruDelivered:
    """Send one ORU and wait for its ACK. Pass ``client`` to reuse a connection across messages."""
    own = client is None
    if client is None:
        if host is None or port is None:
            raise ConfigurationError("send_oru needs a client or a host and port")
        client = MllpClient(host, port, ssl=ssl_context)
    try:
        reply = await client.request(oru.payload, timeout=timeout, is_reply=answers(oru.control_id))
    finally:
        if own:
            await client.close()
    return classify_ack(read_reply(reply), oru.control_id, client.address)


def _practice(hub: Hub, practice_id: str) -> Practice:
    with hub.sessions() as session:
        practice = session.get(Practice, practice_id)
        if practice is None:
            raise NotFound("no such practice")
        session.expunge(practice)
        return practice


def _record(
    hub: Hub,
    practice: Practice,
    oru: BuiltOru,
    *,
    patient_id: str | None,
    address: str,
    sent_at: datetime,
    latency_ms: float,
    result: OruDelivered | None,
    failure: Hl7DeliveryError | None,
) -> None:
    if result is not None:
        status, ack_code, ack_ctrl, error = (
            Hl7MessageStatus.delivered,
            result.ack_code.value,
            result.ack_control_id,
            None,
        )
        error_code = None
    elif isinstance(failure, Hl7Nak):
        status, ack_code, ack_ctrl = Hl7MessageStatus.failed, failure.ack_code.value, None
        # The receiver's own words go to the database only (they may name the patient).
        error = (failure.text or failure.message)[:500]
        error_code = failure.error_codes[0] if failure.error_codes else None
    else:
        assert failure is not None
        status, ack_code, ack_ctrl, error, error_code = (
            Hl7MessageStatus.unconfirmed,
            None,
            None,
            failure.message[:500],
            None,
        )
    with hub.sessions() as session, session.begin():
        row = Hl7Message(
            direction=Direction.outbound,
            received_at=sent_at,
            organization_id=practice.organization_id,
            practice_id=practice.id,
            patient_id=patient_id,
            peer=address[:100],
            control_id=oru.control_id,
            message_type=f"{MessageType.ORU.value}^R01",
            version=Version.v2_5_1.value,
            sending_application="",
            sending_facility="",
            charset="UNICODE UTF-8",
            status=status,
            ack_code=ack_code,
            ack_control_id=ack_ctrl,
            error_code=error_code[:8] if error_code else None,
            error=error,
            size=len(oru.payload),
            raw=oru.payload,
            raw_truncated=False,
            body_digest="",
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            action="hl7.sent",
            outcome=audit.Outcome.success if result is not None else audit.Outcome.failure,
            actor=audit.Actor.service("hl7-delivery"),
            organization_id=practice.organization_id,
            practice_id=practice.id,
            resource_type="Hl7Message",
            resource_ids=[row.id, *oru.measurement_ids],
            latency_ms=latency_ms,
            correlation_id=oru.control_id,
            detail={
                "message_type": row.message_type,
                "control_id": oru.control_id,
                "ack_code": ack_code,
                "status": status.value,
                "error": type(failure).__name__ if failure is not None else None,
                "peer": row.peer,
            },
        )
    metrics.count_message("out", row.message_type, ack_code)


async def deliver_oru(
    hub: Hub,
    practice_id: str,
    oru: BuiltOru,
    *,
    patient_id: str | None = None,
    timeout: float | None = None,
    ssl_context: ssl.SSLContext | None = None,
    client: MllpClient | None = None,
) -> OruDelivered:
    """Send ``oru`` to the practice's HL7 interface (``Practice.hl7_host``/``hl7_port``), record the
    exchange, and return or raise as ``send_oru`` does. A practice with no interface configured
    raises ``ConfigurationError``."""
    practice = await asyncio.to_thread(_practice, hub, practice_id)
    if client is None and (not practice.hl7_host or not practice.hl7_port):
        raise ConfigurationError("the practice has no HL7 interface host and port configured")
    address = client.address if client is not None else f"{practice.hl7_host}:{practice.hl7_port}"
    sent_at = utcnow()
    started = time.monotonic()
    result: OruDelivered | None = None
    failure: Hl7DeliveryError | None = None
    try:
        result = await send_oru(
            oru,
            host=practice.hl7_host,
            port=practice.hl7_port,
            client=client,
            timeout=timeout or hub.settings.hl7_ack_timeout_s,
            ssl_context=ssl_context,
        )
    except Hl7DeliveryError as exc:
        failure = exc
    latency_ms = (time.monotonic() - started) * 1000
    await asyncio.to_thread(
        _record,
        hub,
        practice,
        oru,
        patient_id=patient_id,
        address=address,
        sent_at=sent_at,
        latency_ms=latency_ms,
        result=result,
        failure=failure,
    )
    log.info(
        "hl7.sent",
        practice_id=practice.id,
        control_id=oru.control_id,
        ack=result.ack_code.value if result else getattr(failure, "ack_code", None),
        error=type(failure).__name__ if failure else None,
    )
    if failure is not None:
        raise failure
    assert result is not None
    return result
