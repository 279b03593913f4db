"""Decoding gateway JSON within limits (RFC 8259; SPEC §5: malformed payloads get 422).

``json.loads`` alone turns some payloads into crashes instead of refusals, and a crash answered
500 tells the gateway to retry the same bytes forever:

- nesting deeper than the interpreter's recursion limit raises ``RecursionError``;
- an integer of more than 4,300 digits raises a bare ``ValueError`` (CPython's int/str limit);
- ``NaN``, ``Infinity`` and ``-Infinity`` are accepted although RFC 8259 §6 has no such numbers.

``loads`` refuses all of these — and anything nested deeper than ``MAX_DEPTH`` or a number
literal longer than ``MAX_NUMBER_CHARS`` — with ``PoisonJson``, which names the rule and never
quotes the payload. Device values need a handful of digits; the limits leave wide room.
"""

from __future__ import annotations

import json
from typing import Any

# Deepest array/object nesting accepted. A gateway reading is three levels deep.
MAX_DEPTH = 32
# Longest number literal accepted (digits, sign, point and exponent).
MAX_NUMBER_CHARS = 40


class PoisonJson(ValueError):
    """The body is not JSON the hub accepts; ``type`` is the field-error type to report."""

    def __init__(self, message: str, type_: str) -> None:
        super().__init__(message)
        self.type = type_


def _number(text: str, convert: type[int] | type[float]) -> int | float:
    if len(text) > MAX_NUMBER_CHARS:
        raise PoisonJson(f"a number is longer than {MAX_NUMBER_CHARS} characters", "json_number_too_long")
    return convert(text)


def _int(text: str) -> int | float:
    return _number(text, int)


def _float(text: str) -> int | float:
    value = _number(text, float)
    if value in (float("inf"), float("-inf")):
        # 1e999 parses to infinity: out of range for any JSON number a reading can carry.
        raise PoisonJson("a number is out of range", "json_number_out_of_range")
    return value


def _constant(_name: str) -> Any:
    raise PoisonJson("NaN and Infinity are not JSON numbers (RFC 8259 §6)", "json_invalid")


def _deeper_than(value: Any, limit: int) -> bool:
    # Iterative on purpose: a recursive walk is what this guards against.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def loads(body: bytes | str) -> Any:
    """Decode ``body``; raises ``PoisonJson`` (a ``ValueError``) for anything refused."""
    try:
        value = json.loads(body, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except PoisonJson:
        raise
    except RecursionError:
        raise PoisonJson(f"JSON nests deeper than {MAX_DEPTH} levels", "json_too_deep") from None
    except UnicodeDecodeError:
        raise PoisonJson("body is not UTF-8", "json_invalid") from None
    except json.JSONDecodeError as exc:
        raise PoisonJson(f"body is not valid JSON at byte {exc.pos}", "json_invalid") from None
    except ValueError:
        raise PoisonJson("body is not valid JSON", "json_invalid") from None
    if _deeper_than(value, MAX_DEPTH):
        raise PoisonJson(f"JSON nests deeper than {MAX_DEPTH} levels", "json_too_deep")
    return value
