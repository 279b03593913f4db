"""Prometheus metrics for HL7 v2 / MLLP (SPEC §10). Labels are bounded code sets, never message content."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from vitalbridge.hl7v2.codes import AckCode, AdtEvent, MessageType

MLLP_CONNECTIONS = Counter(
    "vitalbridge_mllp_connections_total", "MLLP connections, by outcome (accepted, refused)", ["outcome"]
)
MLLP_ACTIVE = Gauge("vitalbridge_mllp_active_connections", "MLLP connections open now")
MLLP_GARBAGE_BYTES = Counter("vitalbridge_mllp_garbage_bytes_total", "Bytes outside MLLP frames, skipped")
MLLP_OVERSIZE = Counter("vitalbridge_mllp_oversize_messages_total", "Messages over VB_HL7_MAX_MESSAGE_BYTES")
MLLP_TIMEOUTS = Counter("vitalbridge_mllp_timeouts_total", "Connections closed by a timeout", ["kind"])
HL7_MESSAGES = Counter(
    "vitalbridge_hl7_messages_total", "HL7 messages, by direction, type and ACK code", ["direction", "type", "ack"]
)

_KNOWN_TYPES = {f"{MessageType.ADT.value}^{e.value}" for e in AdtEvent} | {"ORU^R01", "ACK"}
_KNOWN_ACKS = {a.value for a in AckCode}


def count_message(direction: str, type_label: str, ack_code: str | None) -> None:
    # Types and codes come from outside: anything unexpected is folded into "other" so a sender
    # cannot grow the label set without bound.
    HL7_MESSAGES.labels(
        direction=direction,
        type=type_label if type_label in _KNOWN_TYPES else "other",
        ack=ack_code if ack_code in _KNOWN_ACKS else "none",
    ).inc()
