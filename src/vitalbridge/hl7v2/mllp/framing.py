"""MLLP framing: bytes on a TCP stream ↔ HL7 message frames (HL7 MLLP Release 2 block format).

A frame is ``<VT> payload <FS><CR>`` (0x0B … 0x1C 0x0D). ``FrameDecoder`` is sans-I/O: feed it
whatever the socket returned — one byte, half a frame, several frames — and it hands back events
in stream order. It never holds more than ``max_payload`` bytes of one frame: past that the rest of
the frame is dropped and reported as ``Oversize`` once its end arrives, so a huge or endless
message cannot exhaust memory, and the stream stays in step for the next frame.

Bytes outside frames (line noise, a sender's stray newline, a port scanner) are skipped and
reported as ``Garbage`` counts, never as content. A start byte inside an open frame means the
sender gave up on that frame and began again; the partial frame is garbage.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

START_BLOCK = b"\x0b"  # <VT>
END_BLOCK = b"\x1c"  # <FS>
CARRIAGE_RETURN = b"\x0d"  # <CR>
_START = 0x0B
_END = 0x1C
_CR = 0x0D

# How much of an oversize frame is kept so its MSH segment can still be read for the NAK.
HEAD_BYTES = 4096


def encode_frame(payload: bytes) -> bytes:
    """Wrap one message for the wire."""
    return START_BLOCK + payload + END_BLOCK + CARRIAGE_RETURN


@dataclass(frozen=True)
class Frame:
    """One complete message payload (framing removed)."""

    payload: bytes


@dataclass(frozen=True)
class Garbage:
    """``size`` bytes that were not part of any complete frame (skipped)."""

    size: int


@dataclass(frozen=True)
class Oversize:
    """A frame longer than the limit ended; only its first bytes were kept."""

    head: bytes
    size: int


Event = Frame | Garbage | Oversize


class _State(enum.Enum):
    hunt = "hunt"  # between frames, looking for <VT>
    frame = "frame"  # inside a frame, collecting
    discard = "discard"  # inside an oversize frame, dropping bytes


class FrameDecoder:
    def __init__(self, max_payload: int) -> None:
        if max_payload < 1:
            raise ValueError("max_payload must be positive")
        self.max_payload = max_payload
        self._state = _State.hunt
        self._buf = bytearray()
        self._head = b""
        self._size = 0
        # MLLP ends a frame with <FS><CR>; a frame is handed over on <FS> so that a lenient
        # sender that omits <CR> is not left waiting, and the <CR> that normally follows is eaten.
        self._eat_cr = False
        # Counts frames begun (restarts included): how often a sender began a message.
        self.frames_started = 0

    @property
    def in_frame(self) -> bool:
        """A frame has begun and not yet ended (the sender owes us the rest)."""
        return self._state is not _State.hunt

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        garbage = 0
        i, n = 0, len(data)
        while i < n:
            if self._eat_cr:
                self._eat_cr = False
                if data[i] == _CR:
                    i += 1
                    continue
            end, restart = data.find(END_BLOCK, i), data.find(START_BLOCK, i)
            if self._state is _State.hunt:
                if restart < 0:
                    garbage += n - i
                    break
                garbage += restart - i
                self._begin()
                i = restart + 1
                continue
            if restart >= 0 and (end < 0 or restart < end):
                # A new <VT> before <FS>: the sender abandoned the open frame and started again.
                garbage += 1 + len(self._buf) + self._size + (restart - i)
                self._reset()
                self._begin()
                i = restart + 1
                continue
            stop = n if end < 0 else end
            if self._state is _State.frame:
                self._buf += data[i:stop]
                if len(self._buf) > self.max_payload:
                    self._head = bytes(self._buf[: min(HEAD_BYTES, self.max_payload)])
                    self._size = len(self._buf)
                    self._buf = bytearray()
                    self._state = _State.discard
            else:
                self._size += stop - i
            i = stop
            if end >= 0:
                i = end + 1
                if garbage:
                    events.append(Garbage(garbage))
                    garbage = 0
                if self._state is _State.frame:
                    events.append(Frame(bytes(self._buf)))
                else:
                    events.append(Oversize(self._head, self._size))
                self._reset()
                self._eat_cr = True
        if garbage:
            events.append(Garbage(garbage))
        return events

    def _begin(self) -> None:
        self._state = _State.frame
        self.frames_started += 1

    def _reset(self) -> None:
        self._state = _State.hunt
        self._buf = bytearray()
        self._head, self._size = b"", 0
