"""Which error from the tree an EHR answer or a network failure becomes (SPEC §7).

Decided by status code and exception type only, never by parsing messages (STYLE 6):
5xx, 408, timeouts and connection failures are transient; 429 carries ``Retry-After`` (or, without
it, waits for the next minute); 401 after a fresh token, 403, 404/410, 400/422 and other 4xx are
permanent, with the EHR's OperationOutcome text kept in ``diagnostics`` (shown to API callers,
never put in ``str()``). An eCW numeric error body is classified by its code (``ecw_codes``).

An interaction the server does not offer is told apart from a resource it does not have
(FHIR R4 http.html): 405 and 501, any answer whose OperationOutcome says ``not-supported``, and a
404 on a type-level URL (search, create, ``$export``: "resource type not supported, or not a FHIR
end-point") are ``EhrUnsupported`` — unless that 404's OperationOutcome says ``not-found`` or points
at the subject, i.e. a resource the request referenced is missing.
"""

from __future__ import annotations

from typing import Any

import httpx

from vitalbridge.ehr.calls import CallTarget, Interaction
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.ehr.ecw_codes import CODES, EcwClass, ecw_error
from vitalbridge.ehr.headers import rate_limit_wait
from vitalbridge.ehr.outcome import bearer_error, outcome_text
from vitalbridge.errors import (
    EhrAuthError,
    EhrDataRejected,
    EhrForbidden,
    EhrInvalid,
    EhrNotFound,
    EhrPracticeSetup,
    EhrRateLimited,
    EhrRejected,
    EhrSubjectRefused,
    EhrUnavailable,
    EhrUnsupported,
    UpstreamError,
)


def response_json(resp: httpx.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return None


def _names_subject(body: object) -> bool:
    """Whether an OperationOutcome's issues locate the problem at ``*.subject`` (structured
    ``expression``/``location`` fields, not the human text)."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return False
    for issue in body.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        for path in [*(issue.get("expression") or []), *(issue.get("location") or [])]:
            if isinstance(path, str) and (path.endswith(".subject") or ".subject." in path):
                return True
    return False


def _issue_codes(body: object) -> set[str]:
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return set()
    return {str(i.get("code")) for i in body.get("issue") or [] if isinstance(i, dict) and i.get("code")}


# Interactions whose URL names a resource type, not an instance: a 404 there cannot mean "no such
# resource" (a search with no hits is an empty Bundle, a create has nothing to find).
_TYPE_LEVEL = (Interaction.search, Interaction.create, Interaction.operation, Interaction.capabilities)


def _unsupported(status: int, target: CallTarget, body: object) -> bool:
    codes = _issue_codes(body)
    if "not-supported" in codes or status in (405, 501):
        return True
    if status == 404 and target.interaction in _TYPE_LEVEL and not target.resource_ids:
        return "not-found" not in codes and not _names_subject(body)
    return False


def refusal(
    conn: PracticeConnection, method: str, target: CallTarget, resp: httpx.Response, *, granted_scope: str
) -> UpstreamError | EhrRateLimited:
    """The error for a 4xx/5xx answer (the caller applies 429 back-off and 401 invalidation)."""
    status = resp.status_code
    what = f"{method.upper()} {target.resource_type or target.interaction.value}"
    diagnostics = outcome_text(response_json(resp))
    if status == 429:
        retry_after, minute_window = rate_limit_wait(resp.headers.get("retry-after"))
        return EhrRateLimited(
            f"the EHR of practice {conn.practice_code} is rate limiting ({what}: 429); retry in {retry_after:.0f} s",
            retry_after=retry_after,
            minute_window=minute_window,
        )
    if status == 401:
        code = bearer_error(resp.headers.get("www-authenticate")) or "invalid_token"
        return EhrAuthError(
            f"the EHR of practice {conn.practice_code} refused a freshly issued token ({what}: 401 {code}); "
            "check that the client is activated for this practice",
            status_code=status,
            diagnostics=diagnostics,
            oauth_error=code,
        )
    body = response_json(resp)
    coded = ecw_error(body) if status >= 400 else None
    if coded is not None:
        known = _ecw_refusal(conn, what, status, *coded)
        if known is not None:
            return known
    if _unsupported(status, target, body):
        return EhrUnsupported(
            f"the EHR of practice {conn.practice_code} does not support {what} (HTTP {status}); this is a "
            "configuration problem of the practice (its FHIR base URL, or an interaction the EHR does not offer), "
            "not a missing resource: run POST /api/v1/ecw/test/connection/",
            status_code=status,
            diagnostics=diagnostics,
        )
    if status >= 500 or status == 408:
        return EhrUnavailable(
            f"the EHR of practice {conn.practice_code} failed ({what}: HTTP {status}); try again later",
            status_code=status,
            diagnostics=diagnostics,
        )
    if status == 403:
        return EhrForbidden(
            f"the EHR of practice {conn.practice_code} refused {what} (403): the granted scopes "
            f"({granted_scope or 'none reported'}) do not allow it",
            status_code=status,
            diagnostics=diagnostics,
        )
    if status in (404, 410):
        return EhrNotFound(
            f"the EHR of practice {conn.practice_code} has no such resource ({what}: {status})",
            status_code=status,
            diagnostics=diagnostics,
        )
    if status in (400, 422) and _names_subject(body):
        return EhrSubjectRefused(
            f"the EHR of practice {conn.practice_code} refused the subject of {what} ({status}); see diagnostics",
            status_code=status,
            diagnostics=diagnostics,
        )
    if status in (400, 422):
        return EhrInvalid(
            f"the EHR of practice {conn.practice_code} refused {what} as invalid ({status}); see diagnostics",
            status_code=status,
            diagnostics=diagnostics,
        )
    return EhrRejected(
        f"the EHR of practice {conn.practice_code} refused {what} (HTTP {status})",
        status_code=status,
        diagnostics=diagnostics,
    )


def _ecw_refusal(conn: PracticeConnection, what: str, status: int, code: int, key: str) -> UpstreamError | None:
    """The error for an eCW numeric code, or None (unknown code: the HTTP status decides)."""
    known = CODES.get(code)
    diagnostics = f"eCW {code} {key}"
    if known is None:
        # A body that merely repeats the HTTP status (a web framework's error page) is not eCW's.
        if status >= 500 or code == status:
            return None
        return EhrRejected(
            f"the EHR of practice {conn.practice_code} refused {what} with eCW code {code}, which the hub does not "
            "know: look it up in eCW's Error Code Reference Guide",
            status_code=status,
            diagnostics=diagnostics,
        )
    prefix = f"the EHR of practice {conn.practice_code} refused {what} (eCW {code} {known.key})"
    if known.kind is EcwClass.patient:
        return EhrSubjectRefused(f"{prefix}; {known.action}", status_code=status, diagnostics=diagnostics)
    if known.kind is EcwClass.practice_setup:
        return EhrPracticeSetup(
            f"{known.action} ({prefix})", status_code=status, diagnostics=diagnostics, ehr_code=code
        )
    return EhrDataRejected(f"{prefix}: {known.action}", status_code=status, diagnostics=diagnostics, ehr_code=code)


def transport_error(conn: PracticeConnection, method: str, target: CallTarget, exc: Exception) -> EhrUnavailable:
    what = f"{method.upper()} {target.resource_type or target.interaction.value}"
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else f"failed ({type(exc).__name__})"
    return EhrUnavailable(f"the call to the EHR of practice {conn.practice_code} {kind}: {what}")
