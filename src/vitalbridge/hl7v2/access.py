"""Reading values out of a python-hl7 parse tree (HL7 v2.5.1 §2.5 message construction).

python-hl7 nests Field → Repetition → Component → sub-component, but collapses a level to a plain
string when the text holds no delimiter of that level. These helpers give every field one shape —
repetitions of components of sub-components, as raw strings — and unescape leaf values with
``escaping.unescape`` (which never logs values).
"""

from __future__ import annotations

from typing import Any

from vitalbridge.hl7v2.escaping import Delimiters, unescape

HL7_NULL = '""'  # "present and null": the sender asks for the stored value to be removed

Reps = list[list[list[str]]]


def delimiters_of(message: Any) -> Delimiters:
    seps: str = message.separators  # segment, field, repetition, component, sub-component
    return Delimiters(field=seps[1], repetition=seps[2], component=seps[3], subcomponent=seps[4], escape=message.esc)


def segments(message: Any, segment_id: str) -> list[Any]:
    return [seg for seg in message if len(seg) and str(seg[0]) == segment_id]


def raw_field(segment: Any, position: int) -> Reps:
    """Field ``position`` (1-based; for MSH, MSH-3 is 3) as repetitions → components → sub-components."""
    if position >= len(segment):
        return []
    out: Reps = []
    for rep in segment[position]:
        if isinstance(rep, str):
            out.append([[rep]])
            continue
        comps: list[list[str]] = []
        for comp in rep:
            comps.append([comp] if isinstance(comp, str) else [str(s) for s in comp])
        out.append(comps)
    return out


def field_text(segment: Any, position: int) -> str:
    """The field exactly as sent (delimiters included), e.g. to test for ``""``."""
    if position >= len(segment):
        return ""
    return str(segment[position])


class FieldReader:
    """Unescaped access to one segment's values."""

    def __init__(self, segment: Any, delimiters: Delimiters) -> None:
        self.segment = segment
        self.d = delimiters

    def present(self, position: int) -> bool:
        return field_text(self.segment, position) != ""

    def is_null(self, position: int) -> bool:
        return field_text(self.segment, position) == HL7_NULL

    def repetitions(self, position: int) -> list[list[str]]:
        """Each repetition as its components' first sub-components, unescaped."""
        return [
            [unescape(comp[0] if comp else "", self.d) for comp in rep] for rep in raw_field(self.segment, position)
        ]

    def structured(self, position: int) -> Reps:
        """Each repetition's components with all their sub-components, unescaped."""
        return [[[unescape(sub, self.d) for sub in comp] for comp in rep] for rep in raw_field(self.segment, position)]

    def value(self, position: int, rep: int = 1, component: int = 1, sub: int = 1) -> str:
        reps = raw_field(self.segment, position)
        try:
            return unescape(reps[rep - 1][component - 1][sub - 1], self.d).strip()
        except IndexError:
            return ""
