"""What the EHR said went wrong: FHIR ``OperationOutcome`` text and RFC 6750 Bearer errors."""

from __future__ import annotations

import re
from typing import Any

_DIAGNOSTICS_MAX = 1000
_BEARER_ERROR = re.compile(r'error="?([A-Za-z0-9_.-]+)"?')


def outcome_text(body: Any) -> str | None:
    """The issues of an OperationOutcome, one per line: ``severity code: diagnostics``."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return None
    lines = []
    for issue in body.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or ""
        where = issue.get("expression") or issue.get("location") or []
        line = f"{issue.get('severity', 'error')} {issue.get('code', 'unknown')}: {text}".strip()
        if where and isinstance(where, list):
            line += f" (at {', '.join(str(w) for w in where)})"
        lines.append(line)
    return "\n".join(lines)[:_DIAGNOSTICS_MAX] or None


def bearer_error(www_authenticate: str | None) -> str | None:
    """The ``error`` of a ``WWW-Authenticate: Bearer error="invalid_token"`` challenge."""
    if not www_authenticate:
        return None
    match = _BEARER_ERROR.search(www_authenticate)
    return match.group(1) if match else None
