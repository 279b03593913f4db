"""Inbound messages: store, apply, acknowledge (SPEC §4 HL7 v2; DESIGN principles 1 and 5).

A frame holds one message or an HL7 batch (``batch`` module: each message of a batch is handled
as below, and the reply is a response batch). For each message, in ONE transaction: it is parsed
and checked, routed to the practice its sending facility (MSH-4) maps to, applied to the patient registry, stored raw in
``hl7_messages`` with its ACK code, and written to the audit trail. Only after that transaction
commits does the caller send the ACK — so an ACK always means "stored", and a message the hub
could not store gets no ACK at all (the sender keeps it and resends).

Duplicates: a message whose practice, sending application (MSH-3) and control id (MSH-10) match
an earlier *accepted* one, with the same content after MSH, is a resend (typically after a lost
ACK). It is stored as ``duplicate``, answered AA again, and not applied again. The same control id
with different content is refused (AR 205): the sender's counter was reset. A resend of a message
that was refused is processed afresh, so fixing the cause and resending works.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vitalbridge import audit
from vitalbridge.db.base import utcnow
from vitalbridge.errors import ConfigurationError, VitalbridgeError
from vitalbridge.hl7v2 import metrics
from vitalbridge.hl7v2.ack import AckOutcome, Identity, build_ack
from vitalbridge.hl7v2.adt import classify, is_upsert, read_merges, read_patient
from vitalbridge.hl7v2.batch import build_batch_ack, split_frame
from vitalbridge.hl7v2.codes import AckCode, CharacterSet, ErrorCode
from vitalbridge.hl7v2.errors import ErrorLocation, Hl7MessageError, reject
from vitalbridge.hl7v2.models import Direction, Hl7Message, Hl7MessageStatus
from vitalbridge.hl7v2.parsing import (
    Header,
    HeaderRejected,
    character_set,
    check_header,
    first_segment,
    parse_body,
    read_header,
    strip_preamble,
)
from vitalbridge.hl7v2.patient_feed import apply_merge, upsert_patient
from vitalbridge.runtime import Hub
from vitalbridge.settings import Settings
from vitalbridge.tenancy.models import Practice

log = structlog.get_logger("vitalbridge.hl7v2")

_STATUS = {
    AckCode.AA: Hl7MessageStatus.accepted,
    AckCode.AE: Hl7MessageStatus.error,
    AckCode.AR: Hl7MessageStatus.rejected,
}


@dataclass(frozen=True)
class InboundConfig:
    default_charset: CharacterSet = CharacterSet.utf_8
    identity: Identity = field(default_factory=Identity)
    max_message_bytes: int = 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> InboundConfig:
        try:
            charset = CharacterSet(settings.hl7_default_charset.upper())
        except ValueError:
            raise ConfigurationError(
                "VB_HL7_DEFAULT_CHARSET must be one of: " + ", ".join(c.value for c in CharacterSet)
            ) from None
        return cls(
            default_charset=charset,
            identity=Identity(application=settings.hl7_application, facility=settings.hl7_facility),
            max_message_bytes=settings.hl7_max_message_bytes,
        )


def body_digest(raw: bytes) -> str:
    """SHA-256 of everything after MSH: a resend may carry a fresh MSH-7 but the same content."""
    text = strip_preamble(raw).replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    _msh, _sep, body = text.partition(b"\r")
    return hashlib.sha256(body.strip(b"\r")).hexdigest()


def resolve_practice(session: Session, header: Header) -> Practice:
    """MSH-4's namespace id → the one practice whose ``hl7_sending_facility`` it is."""
    facility = header.facility_namespace
    loc = ErrorLocation("MSH", 1, 4)
    if not facility:
        raise reject("MSH-4 sending facility is required", ErrorCode.required_field_missing, loc)
    matches = list(session.scalars(select(Practice).where(Practice.hl7_sending_facility == facility).limit(2)))
    if not matches:
        raise reject(
            f"sending facility {facility[:60]!r} is not mapped to a practice", ErrorCode.table_value_not_found, loc
        )
    if len(matches) > 1:
        raise reject(
            "sending facility is mapped to more than one practice; the hub operator must fix the mapping",
            ErrorCode.table_value_not_found,
            loc,
        )
    return matches[0]


@dataclass
class _Decision:
    outcome: AckOutcome
    status: Hl7MessageStatus
    practice: Practice | None = None
    patient_id: str | None = None
    dedup_key: str | None = None
    duplicate_of_id: str | None = None


class InboundProcessor:
    """Synchronous (database) half of the listener; the MLLP server calls it from a worker thread."""

    def __init__(self, hub: Hub, config: InboundConfig | None = None) -> None:
        self.hub = hub
        self.config = config or InboundConfig.from_settings(hub.settings)

    def handle_frame(self, raw: bytes, peer: str) -> bytes:
        """One MLLP frame: a message, or a batch (``batch`` module); returns the reply payload.

        Each message of a batch is stored and applied in its own transaction, as if sent alone,
        and the reply is the response batch. Raises when a message could not be stored: the
        caller closes without a reply, the sender resends the batch, and the messages already
        stored are answered as duplicates.
        """
        frame = split_frame(raw)
        if not frame.is_batch and frame.problem is None:
            return self.handle(raw, peer)
        if frame.problem is not None:
            log.warning("hl7.frame_refused", peer=peer, messages=len(frame.messages), batch=frame.is_batch)
            refusal = AckOutcome(AckCode.AR, frame.problem, ErrorCode.segment_sequence)
            if not frame.is_batch:
                # The sender waits for one ACK: the first message's. Every message is kept.
                acks = [self.handle(m, peer, refuse=refusal) for m in frame.messages]
                return acks[0]
            per_group = [[self.handle(m, peer, refuse=refusal) for m in g.messages] for g in frame.groups]
        else:
            per_group = [[self.handle(m, peer) for m in g.messages] for g in frame.groups]
        return build_batch_ack(frame, per_group, identity=self.config.identity)

    def handle(self, raw: bytes, peer: str, *, refuse: AckOutcome | None = None) -> bytes:
        """Store, apply and acknowledge one message; returns the ACK payload to send.

        ``refuse``: store it without applying it and answer with this outcome (the frame it came
        in was refused whole). Raises when the message could not be stored; the caller must then
        close without an ACK.
        """
        received_at = utcnow()
        try:
            return self._process(raw, peer, received_at, refuse)
        except IntegrityError:
            # Most likely the same control id committed by another connection a moment ago:
            # a second pass sees it and answers as for a duplicate.
            try:
                return self._process(raw, peer, received_at, refuse)
            except Exception as exc:  # noqa: BLE001 - any failure here becomes AE 207, stored
                log.error("hl7.processing_failed", peer=peer, error=type(exc).__name__)
                return self._store_failure(raw, peer, received_at)
        except Exception as exc:  # noqa: BLE001 - any failure here becomes AE 207, stored
            log.error("hl7.processing_failed", peer=peer, error=type(exc).__name__)
            return self._store_failure(raw, peer, received_at)

    def _process(self, raw: bytes, peer: str, received_at: datetime, refuse: AckOutcome | None = None) -> bytes:
        header: Header | None = None
        charset = CharacterSet.ascii
        early: AckOutcome | None = None
        message = None
        try:
            header = read_header(raw)
            if refuse is not None:
                code = refuse.error or ErrorCode.segment_sequence
                raise HeaderRejected(refuse.text, hl7_error=code, partial=header)
            check_header(header)
            parsed = parse_body(raw, header, self.config.default_charset)
            header, charset, message = parsed.header, parsed.charset, parsed.message
        except Hl7MessageError as exc:
            early = AckOutcome.from_error(exc)
            if header is None and isinstance(exc, HeaderRejected):
                header = exc.partial
            if header is not None:
                try:
                    charset = character_set(header, self.config.default_charset)
                except Hl7MessageError:
                    charset = CharacterSet.ascii

        with self.hub.sessions() as session, session.begin():
            if early is not None or header is None:
                # Still filed under the sender's practice when MSH-4 says which, so the practice's
                # integration team sees its own refused messages.
                practice = _try_practice(session, header)
                decision = _Decision(early or AckOutcome(AckCode.AR), Hl7MessageStatus.rejected, practice)
            else:
                decision = self._decide(session, header, message, raw)
            ack = build_ack(header, decision.outcome, identity=self.config.identity, charset=charset)
            row = self._row(raw, peer, received_at, header, charset, decision, ack.control_id)
            session.add(row)
            session.flush()
            self._audit(session, row, header, decision)
        metrics.count_message("in", header.type_label if header else "", decision.outcome.code.value)
        log.info(
            "hl7.received",
            peer=peer,
            message_type=header.type_label[:32] if header else "",
            control_id=header.control_id[:64] if header else "",
            ack=decision.outcome.code.value,
            status=decision.status.value,
            error_code=decision.outcome.error.value if decision.outcome.error else None,
        )
        return ack.payload

    def _decide(self, session: Session, header: Header, message: object, raw: bytes) -> _Decision:
        try:
            practice = resolve_practice(session, header)
        except Hl7MessageError as exc:
            outcome = AckOutcome.from_error(exc)
            return _Decision(outcome, _STATUS[outcome.code])
        try:
            event = classify(header)
        except Hl7MessageError as exc:
            outcome = AckOutcome.from_error(exc)
            return _Decision(outcome, _STATUS[outcome.code], practice)

        dedup_key = f"{practice.id}|{header.application_namespace[:200]}|{header.control_id}"
        earlier = session.scalar(select(Hl7Message).where(Hl7Message.dedup_key == dedup_key))
        if earlier is not None:
            if earlier.body_digest != body_digest(raw):
                refusal = reject(
                    "message control id was already used for a different message from this sender",
                    ErrorCode.duplicate_key,
                    ErrorLocation("MSH", 1, 10),
                )
                return _Decision(AckOutcome.from_error(refusal), Hl7MessageStatus.rejected, practice)
            return _Decision(
                _replayed_outcome(earlier),
                Hl7MessageStatus.duplicate,
                practice,
                patient_id=earlier.patient_id,
                duplicate_of_id=earlier.id,
            )

        patient_id: str | None = None
        try:
            # A savepoint: a message that fails half-way leaves no partial patient changes,
            # while its own row and audit entry still commit below.
            with session.begin_nested():
                if is_upsert(event):
                    patient, _created = upsert_patient(session, practice, read_patient(message))
                    patient_id = patient.id
                else:
                    for i, merge in enumerate(read_merges(message), start=1):
                        survivor = apply_merge(session, practice, merge, i)
                        patient_id = patient_id or survivor.id
        except Hl7MessageError as exc:
            # No dedup key: once the cause is fixed (say, a duplicate MRN in the registry), the
            # sender's resend of the same message must be applied, not answered from memory.
            outcome = AckOutcome.from_error(exc)
            return _Decision(outcome, _STATUS[outcome.code], practice)
        return _Decision(AckOutcome.accept(), Hl7MessageStatus.accepted, practice, patient_id, dedup_key)

    def _row(
        self,
        raw: bytes,
        peer: str,
        received_at: datetime,
        header: Header | None,
        charset: CharacterSet,
        decision: _Decision,
        ack_control_id: str,
    ) -> Hl7Message:
        outcome = decision.outcome
        return Hl7Message(
            direction=Direction.inbound,
            received_at=received_at,
            organization_id=decision.practice.organization_id if decision.practice else None,
            practice_id=decision.practice.id if decision.practice else None,
            patient_id=decision.patient_id,
            peer=peer[:100],
            control_id=header.control_id[:200] if header else "",
            message_type=header.type_label[:32] if header else "",
            version=header.version_raw[:16] if header else "",
            sending_application=header.application_namespace[:200] if header else "",
            sending_facility=header.facility_namespace[:200] if header else "",
            charset=charset.value,
            status=decision.status,
            ack_code=outcome.code.value,
            ack_control_id=ack_control_id,
            error_code=outcome.error.value if outcome.error else None,
            error=outcome.text[:500] or None,
            error_location=str(outcome.location) if outcome.location else None,
            size=len(raw),
            raw=raw,
            raw_truncated=False,
            body_digest=body_digest(raw),
            dedup_key=decision.dedup_key,
            duplicate_of_id=decision.duplicate_of_id,
        )

    @staticmethod
    def _audit(session: Session, row: Hl7Message, header: Header | None, decision: _Decision) -> None:
        code = decision.outcome.code
        audit.record(
            session,
            action="hl7.received",
            outcome=audit.Outcome.success if code is AckCode.AA else audit.Outcome.failure,
            actor=audit.Actor("hl7", (header.facility_namespace[:90] if header else "") or "unknown"),
            organization_id=row.organization_id,
            practice_id=row.practice_id,
            resource_type="Hl7Message",
            resource_ids=[row.id] + ([row.patient_id] if row.patient_id else []),
            correlation_id=row.control_id[:64] or None,
            detail={
                "message_type": row.message_type,
                "control_id": row.control_id[:64],
                "ack_code": code.value,
                "ack_control_id": row.ack_control_id,
                "error_code": row.error_code,
                "status": row.status.value,
                "peer": row.peer,
            },
        )

    def _store_failure(self, raw: bytes, peer: str, received_at: datetime) -> bytes:
        """The hub failed (not the message): store it as AE 207 so it is visible, then NAK it."""
        header = readable_header(raw)
        decision = _Decision(
            AckOutcome(
                AckCode.AE, "application internal error; the message was stored for review", ErrorCode.internal_error
            ),
            Hl7MessageStatus.error,
        )
        with self.hub.sessions() as session, session.begin():
            decision.practice = _try_practice(session, header)
            ack = build_ack(header, decision.outcome, identity=self.config.identity)
            row = self._row(raw, peer, received_at, header, CharacterSet.ascii, decision, ack.control_id)
            session.add(row)
            session.flush()
            self._audit(session, row, header, decision)
        metrics.count_message("in", header.type_label if header else "", AckCode.AE.value)
        return ack.payload

    def handle_oversize(self, head: bytes, size: int, peer: str) -> bytes | None:
        """A message over the size limit: AR when its MSH is readable, else None (close the connection).

        Only the MSH segment is kept — enough to see who sent what, with no patient data.
        """
        received_at = utcnow()
        header = readable_header(head)
        limit = self.config.max_message_bytes
        outcome = AckOutcome(
            AckCode.AR,
            f"message is {size} bytes; this interface accepts at most {limit}",
            ErrorCode.data_type,
        )
        charset = CharacterSet.ascii
        msh = first_segment(head) if header is not None else b""
        with self.hub.sessions() as session, session.begin():
            decision = _Decision(outcome, Hl7MessageStatus.rejected, _try_practice(session, header))
            if header is not None:
                try:
                    charset = character_set(header, self.config.default_charset)
                except Hl7MessageError:
                    charset = CharacterSet.ascii
            ack = build_ack(header, outcome, identity=self.config.identity, charset=charset)
            row = self._row(msh, peer, received_at, header, charset, decision, ack.control_id)
            row.size = size
            row.raw_truncated = True
            if header is None:
                row.ack_code = None
                row.ack_control_id = None
            session.add(row)
            session.flush()
            self._audit(session, row, header, decision)
        metrics.count_message("in", header.type_label if header else "", AckCode.AR.value if header else None)
        return ack.payload if header is not None else None


def readable_header(raw: bytes) -> Header | None:
    """MSH as far as it can be read (a partial one when only MSH-2 is wrong), else None."""
    try:
        return read_header(raw)
    except HeaderRejected as exc:
        return exc.partial
    except Hl7MessageError:
        return None


def _try_practice(session: Session, header: Header | None) -> Practice | None:
    if header is None:
        return None
    try:
        return resolve_practice(session, header)
    except VitalbridgeError:
        return None


def _replayed_outcome(earlier: Hl7Message) -> AckOutcome:
    code = AckCode(earlier.ack_code) if earlier.ack_code else AckCode.AA
    error = ErrorCode(earlier.error_code) if earlier.error_code else None
    location = None
    if earlier.error_location:
        parts = earlier.error_location.split("^")
        location = ErrorLocation(
            parts[0],
            int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 1,
            int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None,
            int(parts[4]) if len(parts) > 4 and parts[4].isdigit() else None,
        )
    return AckOutcome(code, earlier.error or "", error, location)
