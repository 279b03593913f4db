"""The sandbox's refusals, and what each becomes on the wire (SPEC §11; STYLE 5).

    SandboxError
    ├── OAuthError                    RFC 6749 §5.2 JSON ``{error, error_description}``
    │   ├── InvalidRequest            400 invalid_request
    │   ├── InvalidClient             401 invalid_client (+ WWW-Authenticate for HTTP Basic)
    │   ├── InvalidGrant              400 invalid_grant
    │   ├── UnauthorizedClient        400 unauthorized_client
    │   ├── UnsupportedGrantType      400 unsupported_grant_type
    │   ├── InvalidScope              400 invalid_scope
    │   └── TemporarilyUnavailable    429 temporarily_unavailable (rate limit on the token path)
    └── FhirError                     FHIR ``OperationOutcome`` (status chosen per refusal)

Errors here are plain data; ``responses.py`` turns them into HTTP responses. Descriptions
say what the caller should check and never carry secrets, tokens or assertions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


class SandboxError(Exception):
    status_code: ClassVar[int] = 500

    def __init__(self, description: str, *, status: int | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(description)
        self.description = description
        self.status = status if status is not None else self.status_code
        self.headers = dict(headers or {})


class OAuthError(SandboxError):
    error: ClassVar[str] = "invalid_request"
    status_code = 400

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status_code = 401


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class TemporarilyUnavailable(OAuthError):
    error = "temporarily_unavailable"
    status_code = 429


@dataclass(frozen=True)
class Issue:
    """One ``OperationOutcome.issue``; ``code`` is a FHIR IssueType (e.g. invalid, forbidden)."""

    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    severity: str = "error"

    def as_json(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = list(self.expression)
            # R4 still reads `location` in many clients; it carries the same path.
            issue["location"] = list(self.expression)
        return issue


def operation_outcome(issues: Sequence[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.as_json() for i in issues]}


class FhirError(SandboxError):
    """A refusal on the FHIR API. ``issues`` default to one built from the arguments."""

    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        *,
        expression: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        issues: Sequence[Issue] | None = None,
    ):
        super().__init__(diagnostics, status=status, headers=headers)
        self.issues = list(issues) if issues else [Issue(code, diagnostics, tuple(expression))]

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


def bad_request(diagnostics: str, *, expression: Sequence[str] = ()) -> FhirError:
    return FhirError(400, "invalid", diagnostics, expression=expression)


def not_found(diagnostics: str) -> FhirError:
    return FhirError(404, "not-found", diagnostics)


def forbidden(diagnostics: str, *, headers: Mapping[str, str] | None = None) -> FhirError:
    return FhirError(403, "forbidden", diagnostics, headers=headers)


def unprocessable(issues: Sequence[Issue]) -> FhirError:
    return FhirError(422, "processing", issues[0].diagnostics, issues=issues)
