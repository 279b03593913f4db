"""The one redaction layer for everything the hub logs (SPEC §9, DESIGN principle 6).

Two nets, applied to every log event whatever its origin (structlog or stdlib loggers such as
uvicorn, httpx and SQLAlchemy):

1. **By key**: a value stored under a key that names a secret or a PHI field is replaced whole,
   however deep it sits in dicts and lists (``{"subject": {"display": …}}``).
2. **By shape**: inside every remaining string, anything that looks like a bearer or Basic
   credential, a JWT, a PEM block, a hub API token, URL user-info, a URL query value or an
   HL7 v2 segment that carries patient data is cut out.

The nets catch mistakes; they are not a licence to log PHI. Free text such as "patient Jane Doe"
cannot be recognised, so code logs identifiers, never values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

REDACTED = "[REDACTED]"

# Keys whose values are secrets, compared case-insensitively with '-' read as '_'.
SECRET_KEYS = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "api_token",
        "api_key",
        "x_api_key",
        "secret",
        "client_secret",
        "assertion",
        "client_assertion",
        "password",
        "passwd",
        "private_key",
        "code_verifier",
        "signature",
        "x_signature",
    }
)
# Keys whose values are PHI (FHIR Patient / HumanName / ContactPoint fields and our own columns).
PHI_KEYS = frozenset(
    {
        "name",
        "names",
        "given",
        "family",
        "prefix",
        "suffix",
        "first_name",
        "last_name",
        "given_name",
        "family_name",
        "middle_name",
        "full_name",
        "display",
        "birthdate",
        "birth_date",
        "date_of_birth",
        "dob",
        "mrn",
        "ssn",
        "identifier",
        "identifiers",
        "phone",
        "telecom",
        "address",
        "email",
        "value",
        "values",
        "valuequantity",
        "valuestring",
        "component",
        "note",
        "notes",
        "text",
        "comment",
        "input",  # pydantic validation errors echo the submitted value here
    }
)
# Key fragments that mark a secret whatever the prefix (``gateway_secret``, ``hmac_secret``…).
_SECRET_FRAGMENTS = ("secret", "password", "private_key", "authorization", "credential")


def is_sensitive_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    k = key.strip().lower().replace("-", "_")
    if k in SECRET_KEYS or k in PHI_KEYS:
        return True
    if k.endswith("_token") or k.endswith("_name") or k.endswith("_assertion"):
        return True
    return any(fragment in k for fragment in _SECRET_FRAGMENTS)


# Order matters: whole PEM blocks before line-oriented patterns.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)", re.S), REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), rf"\1 {REDACTED}"),
    (re.compile(r"(?i)\b(token)\s+[A-Za-z0-9._~+/=-]{20,}"), rf"\1 {REDACTED}"),
    # key=value / "key": "value" inside free text (exception messages, form bodies).
    (
        re.compile(
            r"""(?i)(["']?\b(?:[a-z_]*secret|password|passwd|[a-z_]*token|assertion|code_verifier|api_key|"""
            r"""private_key)["']?\s*[=:]\s*["']?)[^\s&,;"'}]+"""
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"\bvb_[A-Za-z0-9_-]{16,}"), REDACTED),
    # user:password@ in URLs
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@"), rf"\1{REDACTED}@"),
    # Query values: `?name=Jane&birthdate=…` keeps the parameter names, drops every value.
    (re.compile(r"([?&][A-Za-z0-9_.:\[\]%-]+=)[^&\s\"'#]*"), rf"\1{REDACTED}"),
    # HL7 v2 segments that carry patient data (PID, next of kin, visit, results, notes, merges).
    (
        re.compile(r"\b(PID|PD1|NK1|PV1|PV2|OBX|NTE|GT1|IN1|IN2|MRG|DG1|AL1)\|[^\r\n\x1c\x0b]*"),
        rf"\1|{REDACTED}",
    ),
)


def redact_text(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` with sensitive keys masked and every string scrubbed."""
    if _depth > 32:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if is_sensitive_key(k) and v is not None else redact(v, _depth + 1)) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, _depth + 1) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else (exceptions, models, paths) is logged by its text, scrubbed.
    return redact_text(str(value))


# Keys whose scalar values are kept when a request or response body is described in a DEBUG
# log: identifiers, codes and error texts. Every other value is replaced by its type and size,
# because a caller can put PHI under any key (a name in ``practice_code``, a phone in ``role``).
SAFE_BODY_KEYS = frozenset(
    {
        "id",
        "resourcetype",
        "status",
        "error",
        "detail",
        "msg",
        "type",
        "loc",
        "code",
        "system",
        "unit",
        "seq",
        "next_cursor",
        "action",
        "outcome",
        "method",
        "count",
        "imported",
        "skipped",
    }
)


def describe_body(
    value: Any, key: str | None = None, _depth: int = 0, *, safe_keys: frozenset[str] = SAFE_BODY_KEYS
) -> Any:
    """The shape of a JSON body for DEBUG logs: structure and safe ids, no free values.

    ``safe_keys=frozenset()`` keeps no value at all: request bodies are the caller's text, and
    a caller can put an MRN under ``id`` or ``code`` as easily as under ``name``."""
    if _depth > 16:
        return "[…]"
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if is_sensitive_key(k) else describe_body(v, str(k), _depth + 1, safe_keys=safe_keys))
            for k, v in value.items()
        }
    if isinstance(value, list):
        described = [describe_body(v, key, _depth + 1, safe_keys=safe_keys) for v in value[:20]]
        return described + (["[…]"] if len(value) > 20 else [])
    if value is None or isinstance(value, bool):
        return value
    if key is not None and key.lower() in safe_keys and isinstance(value, str | int | float):
        return redact(value)
    if isinstance(value, str):
        return f"[str:{len(value)}]"
    return f"[{type(value).__name__}]"


def redact_event(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """structlog processor: the single place every log event passes through."""
    out: dict[str, Any] = {}
    for key, value in event_dict.items():
        if key.startswith("_"):  # structlog's own bookkeeping (the LogRecord), never rendered
            out[key] = value
        elif key in ("event", "exception", "stack") or not is_sensitive_key(key):
            out[key] = redact(value)
        else:
            out[key] = REDACTED
    return out
