"""HL7 v2 batch protocol: splitting a frame into messages, and the response batch (HL7 v2.5.1 §2.10.3
batches, §2.15.1-2.15.2 BHS/BTS, §2.15.4-2.15.5 FHS/FTS; MLLP Release 2: a block holds one message
or one batch).

A frame is one of:

* one message (the usual case);
* a batch: ``[FHS] { [BHS] { MSH … } [BTS] } [FTS]``. Every message is applied on its own and
  acknowledged in a response batch that mirrors the envelope: BHS-12/FHS-12 (reference control
  id) carry the received BHS-11/FHS-11, BTS-1/FTS-1 count what the response holds (§2.10.3.2);
* several messages with no envelope. MLLP does not allow that, and a sender doing it expects one
  ACK where several would be owed, so the whole frame is refused with the reason.

A batch whose envelope does not add up (a trailer count that differs from what arrived, a segment
outside any message, FHS not first) is refused whole: part of it was probably lost on the way.
Pure: bytes in, structure out; no database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from vitalbridge.hl7v2.ack import Identity, new_control_id
from vitalbridge.hl7v2.datatypes import format_dtm
from vitalbridge.hl7v2.parsing import strip_preamble

_SEGMENT_END = re.compile(rb"\r\n|\r|\n")
ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")


@dataclass
class Group:
    """One batch: its BHS and BTS segments (None when absent) and its messages."""

    header: bytes | None = None
    trailer: bytes | None = None
    messages: list[bytes] = field(default_factory=list)


@dataclass
class FrameContent:
    """What one MLLP frame holds. ``is_batch`` when any envelope segment was present."""

    file_header: bytes | None = None
    file_trailer: bytes | None = None
    groups: list[Group] = field(default_factory=list)
    problem: str | None = None  # why the frame is refused whole, None when it can be applied

    @property
    def is_batch(self) -> bool:
        return (
            self.file_header is not None
            or self.file_trailer is not None
            or any(g.header is not None or g.trailer is not None for g in self.groups)
        )

    @property
    def messages(self) -> list[bytes]:
        return [m for g in self.groups for m in g.messages]


def _fields(segment: bytes) -> list[str]:
    """A segment's fields, index n = field n. In FHS/BHS, as in MSH, field 1 is the separator itself."""
    text = segment.decode("latin-1")
    sep = text[3] if len(text) > 3 else "|"
    parts = text.split(sep)
    return [parts[0], sep, *parts[1:]] if parts[0] in ("FHS", "BHS") else parts


def field_value(segment: bytes | None, n: int) -> str:
    if segment is None:
        return ""
    parts = _fields(segment)
    return parts[n].strip() if n < len(parts) else ""


def split_frame(raw: bytes) -> FrameContent:
    """Segments of ``raw`` grouped into batches and messages, with ``problem`` set when not usable."""
    frame = FrameContent()
    segments = [s for s in _SEGMENT_END.split(strip_preamble(raw)) if s.strip()]
    group: Group | None = None
    message: list[bytes] | None = None

    def close_message() -> None:
        nonlocal message
        if message is not None:
            assert group is not None
            group.messages.append(b"\r".join(message) + b"\r")
            message = None

    for index, seg in enumerate(segments):
        seg_id = seg[:3]
        if frame.file_trailer is not None:
            frame.problem = "segments follow the file trailer (FTS)"
            break
        if seg_id == b"FHS":
            if index != 0:
                frame.problem = "FHS must be the first segment of the frame"
                break
            frame.file_header = seg
        elif seg_id == b"BHS":
            close_message()
            if group is not None and group.header is not None and group.trailer is None:
                frame.problem = "a batch header (BHS) starts before the previous batch's trailer (BTS)"
                break
            group = Group(header=seg)
            frame.groups.append(group)
        elif seg_id == b"BTS":
            close_message()
            if group is None or group.trailer is not None:
                group = Group()
                frame.groups.append(group)
            group.trailer = seg
        elif seg_id == b"FTS":
            close_message()
            frame.file_trailer = seg
        elif seg_id == b"MSH":
            close_message()
            if group is None or group.trailer is not None:
                group = Group()
                frame.groups.append(group)
            message = [seg]
        elif message is None:
            if index == 0:
                # Not HL7 at all: the single-message path refuses it with the usual reason.
                return FrameContent(groups=[Group(messages=[raw])])
            frame.problem = f"segment {seg_id.decode('latin-1')!r} is outside any message (no MSH before it)"
            break
        else:
            message.append(seg)
    close_message()
    if frame.problem is None:
        frame.problem = _count_problem(frame)
    if not frame.groups:
        frame.groups.append(Group())
    return frame


def _count_problem(frame: FrameContent) -> str | None:
    for i, group in enumerate(frame.groups, start=1):
        declared = field_value(group.trailer, 1)
        if declared and declared != str(len(group.messages)):
            return f"batch {i}: BTS-1 says {declared[:10]} messages but the batch holds {len(group.messages)}"
    declared = field_value(frame.file_trailer, 1)
    batches = sum(1 for g in frame.groups if g.header is not None)
    if declared and batches and declared != str(batches):
        return f"FTS-1 says {declared[:10]} batches but the file holds {batches}"
    if not frame.is_batch and len(frame.messages) > 1:
        return (
            f"this frame holds {len(frame.messages)} messages; MLLP carries one message per frame: "
            "send each in its own frame, or wrap them in an HL7 batch (BHS ... BTS)"
        )
    return None


def _mirror(segment: bytes, seg_id: str, identity: Identity, now: str, comment: str = "") -> str:
    """FHS/BHS of the response: sender and receiver swapped, a new control id, field 12 = theirs."""
    f = _fields(segment)

    def get(n: int) -> str:
        return f[n] if n < len(f) else ""

    sep = f[1]
    encoding = get(2) or "^~\\&"
    out = [
        seg_id + sep + encoding,
        get(5) or identity.application,
        get(6) or identity.facility,
        get(3),
        get(4),
        now,
        "",
        get(9),
        _safe(comment, sep, encoding),
        new_control_id(),
        get(11),
    ]
    return sep.join(out)


def _safe(text: str, sep: str, encoding: str) -> str:
    """Our own comment text, with any delimiter character replaced (it is ASCII we wrote)."""
    return "".join(" " if ch in sep + encoding else ch for ch in text)


def build_batch_ack(
    frame: FrameContent, acks: list[list[bytes]], *, identity: Identity = Identity(), now: datetime | None = None
) -> bytes:
    """The response batch: ``acks[i]`` are the ACK payloads for ``frame.groups[i]``'s messages."""
    stamp = format_dtm(now or datetime.now().astimezone())
    first = frame.file_header or next((g.header for g in frame.groups if g.header is not None), None)
    comment = _safe(frame.problem or "", first[3:4].decode("latin-1") if first else "|", "^~\\&")
    out: list[bytes] = []
    sep = b"|"
    if frame.file_header is not None:
        out.append(_mirror(frame.file_header, "FHS", identity, stamp, comment).encode("latin-1"))
        sep = frame.file_header[3:4]
    batches = 0
    for group, group_acks in zip(frame.groups, acks, strict=True):
        if group.header is not None:
            out.append(_mirror(group.header, "BHS", identity, stamp, comment).encode("latin-1"))
            batches += 1
            sep = group.header[3:4]
        out += [a.rstrip(b"\r") for a in group_acks]
        if group.header is not None or group.trailer is not None:
            # BTS-1 batch message count, BTS-2 batch comment.
            out.append(sep.join([b"BTS", str(len(group_acks)).encode(), comment.encode("latin-1")]).rstrip(sep))
    if frame.file_trailer is not None or frame.file_header is not None:
        count = str(batches or len(frame.groups)).encode()
        out.append(sep.join([b"FTS", count, comment.encode("latin-1")]).rstrip(sep))
    return b"\r".join(out) + b"\r"
