"""Reading HL7 v2 messages from a file (SPEC §10 CLI: ``vitalbridge hl7 send``; test data in ``tests/data/hl7``).

Files written by people and by interface engines differ: segments end with CR, LF or CRLF;
messages are separated by blank lines, or simply follow one another (a new MSH starts a new
message); some tools leave MLLP framing bytes or FHS/BHS batch envelopes in. All are accepted.
Bytes are kept as they are, so a file in Latin-1 is sent in Latin-1.
"""

from __future__ import annotations

import re

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")


def split_messages(data: bytes) -> list[bytes]:
    """Each message in ``data`` as bytes with CR-terminated segments."""
    # A UTF-8 byte-order mark (Windows editors) is no content; each concatenated file may carry one.
    data = data.replace(b"\x0b", b"\n").replace(b"\x1c", b"\n").replace(b"\xef\xbb\xbf", b"")
    messages: list[list[bytes]] = []
    current: list[bytes] = []
    for line in _LINE_BREAK.split(data):
        line = line.lstrip(b" \t")
        if not line.strip():
            if current:
                messages.append(current)
                current = []
            continue
        if line[:3] in _ENVELOPE:
            continue
        if line.startswith(b"MSH") and current:
            messages.append(current)
            current = []
        current.append(line)
    if current:
        messages.append(current)
    return [b"\r".join(segments) + b"\r" for segments in messages]
