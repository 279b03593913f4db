"""NDJSON framing (Bulk Data IG: one resource per line, ``\\n``-separated, UTF-8) with byte offsets.

Bytes in, ``(line, end_offset)`` out: the offset of the byte after the line's newline, counted
from the start of the file, so a caller can commit "everything up to here is imported" and later
ask for the rest with ``Range: bytes={offset}-``. Memory is bounded by the longest line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

# A Patient line is a few KB; anything this long is not one, and holding it would defeat the
# bounded-memory promise.
MAX_LINE_BYTES = 8 * 1024 * 1024


class LineTooLong(ValueError):
    """A line exceeded ``MAX_LINE_BYTES``."""


def lines_with_offsets(chunks: Iterable[bytes], start: int = 0) -> Iterator[tuple[bytes, int]]:
    """Yield each line (without its newline or a trailing ``\\r``) and the offset after it.

    A last line without a newline is yielded too. ``start`` is the file offset of the first byte
    of ``chunks`` (non-zero when the download was resumed with a Range request).
    """
    pending = bytearray()
    offset = start  # file offset of pending[0]
    for chunk in chunks:
        if not chunk:
            continue
        pending += chunk
        begin = 0
        while True:
            nl = pending.find(b"\n", begin)
            if nl < 0:
                break
            line = bytes(pending[begin:nl])
            end = offset + nl + 1
            yield (line[:-1] if line.endswith(b"\r") else line), end
            begin = nl + 1
        if begin:
            del pending[:begin]
            offset += begin
        if len(pending) > MAX_LINE_BYTES:
            raise LineTooLong(f"an NDJSON line is longer than {MAX_LINE_BYTES} bytes")
    if pending:
        line = bytes(pending)
        yield (line[:-1] if line.endswith(b"\r") else line), offset + len(pending)
