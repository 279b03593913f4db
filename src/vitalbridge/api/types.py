"""Input field types shared by the API schemas (DESIGN principle 5: precise 4xx, never a 500).

``SafeText`` refuses control characters: a NUL byte cannot be stored in PostgreSQL text (it
would surface as a 500), and line breaks or escapes in names end up in logs and CSV exports.
``RefParam`` is a path or query reference to one of the hub's objects (ids, practice codes).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator


def _no_control_characters(value: str) -> str:
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError("control characters are not allowed")
    return value


SafeText = Annotated[str, AfterValidator(_no_control_characters)]

REF_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
# Paging offsets beyond this are refused with a 422 rather than reaching the database, where an
# integer past 64 bits is an overflow error (a 500) on SQLite.
MAX_OFFSET = 10_000_000
RefParam = Annotated[str, Path(pattern=REF_PATTERN, description="An id (or practice code)")]
# Printable ASCII for codes used as filters (actions, outcomes, correlation ids).
CODE_PATTERN = r"^[\x20-\x7e]{1,64}$"
