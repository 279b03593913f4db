"""HL7 v2 delimiters and escape sequences (HL7 v2.5.1 §2.5.4 delimiters, §2.7 escape sequences).

python-hl7 has ``escape``/``unescape`` helpers, but its ``unescape`` logs the whole field value
on a malformed sequence (PHI in logs) through the deprecated ``Logger.warn``, and its ``escape``
turns every non-ASCII character into ``\\Xhh\\`` with a single byte, which is wrong for characters
above U+00FF. These two functions do only what the standard's text types need and never log.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Delimiters:
    """MSH-1 and MSH-2: the characters that structure a message."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        """MSH-2 as written in a message header."""
        return self.component + self.repetition + self.escape + self.subcomponent

    @classmethod
    def from_header(cls, field_separator: str, encoding_characters: str) -> Delimiters:
        enc = encoding_characters
        default = cls()
        return cls(
            field=field_separator,
            component=enc[0] if len(enc) > 0 else default.component,
            repetition=enc[1] if len(enc) > 1 else default.repetition,
            escape=enc[2] if len(enc) > 2 else default.escape,
            subcomponent=enc[3] if len(enc) > 3 else default.subcomponent,
        )


DEFAULT_DELIMITERS = Delimiters()


def escape(text: str, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Make ``text`` safe inside one (sub)component: delimiters become ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``,
    line breaks ``\\.br\\``, other control characters ``\\Xhh\\``. Other characters pass through:
    the message's character set (MSH-18) carries them."""
    table = {
        d.escape: f"{d.escape}E{d.escape}",  # first, so the escapes added below are not re-escaped
        d.field: f"{d.escape}F{d.escape}",
        d.component: f"{d.escape}S{d.escape}",
        d.subcomponent: f"{d.escape}T{d.escape}",
        d.repetition: f"{d.escape}R{d.escape}",
    }
    out: list[str] = []
    text = text.replace("\r\n", "\n")
    for ch in text:
        if ch in table:
            out.append(table[ch])
        elif ch in "\r\n":
            out.append(f"{d.escape}.br{d.escape}")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"{d.escape}X{ord(ch):02X}{d.escape}")
        else:
            out.append(ch)
    return "".join(out)


def unescape(text: str, d: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Undo ``escape`` for values read from a message.

    Formatting sequences (highlighting ``\\H\\``/``\\N\\``, ``\\.sp\\``…) are dropped or become a
    newline; ``\\Xhh..\\`` becomes the bytes' Latin-1 characters; an unknown or unterminated
    sequence is dropped rather than guessed at.
    """
    esc = d.escape
    if esc not in text:
        return text
    simple = {"F": d.field, "S": d.component, "T": d.subcomponent, "R": d.repetition, "E": esc}
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != esc:
            out.append(ch)
            i += 1
            continue
        close = text.find(esc, i + 1)
        if close < 0:
            break  # unterminated: drop the rest of the sequence
        seq = text[i + 1 : close]
        i = close + 1
        if seq in simple:
            out.append(simple[seq])
        elif seq in (".br", ".sp") or seq.startswith(".sp"):
            out.append("\n")
        elif seq.startswith("X") and len(seq) > 1 and len(seq) % 2 == 1:
            try:
                out.append(bytes.fromhex(seq[1:]).decode("latin-1"))
            except ValueError:
                continue
        # \H\ \N\ \.fi\ \.nf\ \.in\ \.ti\ \.sk\ \.ce\ \Cxxyy\ \Mxxyyzz\ \Zxx\: formatting or
        # character-set switches with no meaning in plain demographic values; dropped.
    return "".join(out)
