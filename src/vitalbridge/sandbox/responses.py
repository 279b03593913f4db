"""The two wire formats the sandbox speaks: OAuth JSON (RFC 6749 §5.1/§5.2) and FHIR JSON.

One converter per format (STYLE 5): every refusal raised anywhere ends up here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from vitalbridge.sandbox.errors import FhirError, Issue, OAuthError, operation_outcome

FHIR_JSON = "application/fhir+json"
# RFC 6749 §5.1: token responses must not be cached anywhere.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def fhir_json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(_dumps(body), status_code=status, headers=dict(headers or {}), media_type=FHIR_JSON)


def oauth_json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    merged = {**NO_STORE, **(headers or {})}
    return Response(_dumps(body), status_code=status, headers=merged, media_type="application/json")


def outcome_response(
    status: int, code: str, diagnostics: str, headers: Mapping[str, str] | None = None, severity: str = "error"
) -> Response:
    return fhir_json(operation_outcome([Issue(code, diagnostics, severity=severity)]), status, headers)


async def oauth_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    return oauth_json(exc.body(), exc.status, exc.headers)


async def fhir_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FhirError)
    return fhir_json(exc.outcome(), exc.status, exc.headers)
