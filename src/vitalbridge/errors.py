"""The one error tree of vitalbridge, and what each error becomes on each wire.

    VitalbridgeError                  500  exception   AE
    ├── ConfigurationError            500  exception   AE   (operator must fix settings)
    ├── BadRequest                    400  invalid     AR   (e.g. a forged or replayed OAuth state)
    ├── NotFound                      404  not-found   AE
    ├── Unauthorized                  401  login       AR
    ├── Forbidden                     403  forbidden   AR
    ├── Conflict                      409  conflict    AE
    ├── PayloadTooLarge               413  too-long    AE
    ├── ValidationFailed              422  invalid     AE   (carries field-level errors)
    ├── RateLimited                   429  throttled   AE   (carries retry_after)          transient
    │   └── EhrRateLimited            429  throttled   AE   (the EHR answered 429)         transient
    └── UpstreamError                 502  transient   AE   (the EHR or a gateway failed)  transient
        ├── EhrUnavailable            502  transient   AE   (5xx, timeout, connect/reset)  transient
        ├── EhrRejected               502  processing  AE   (a 4xx the EHR will repeat)    permanent
        │   ├── EhrForbidden          502  forbidden   AE   (403: scope not granted)
        │   ├── EhrNotFound           502  not-found   AE   (404/410: e.g. a merged patient)
        │   ├── EhrPracticeSetup      502  business-rule AE (eCW 308: the practice must act)
        │   ├── EhrUnsupported        502  not-supported AE (405/501, not-supported, 404 on a type URL)
        │   └── EhrInvalid            502  invalid     AE   (400/422 with an OperationOutcome)
        │       ├── EhrSubjectRefused 502  invalid     AE   (the subject, e.g. eCW 100)
        │       └── EhrDataRejected   502  invalid     AE   (eCW 611/612/613…: the content)
        └── EhrAuthError              502  login       AE   (token endpoint refused: oauth_error) permanent
            ├── EhrAuthUnavailable    502  transient   AE   (token endpoint unreachable / 5xx)    transient
            └── EhrReauthorize        502  login       AE   (the user grant is gone: re-authorize) transient

``transient`` is a class attribute: retry policies decide by type (STYLE 6), never by message.

Each class knows its HTTP status, FHIR ``OperationOutcome.issue.code`` and HL7 v2 ACK code;
converters to each wire format live beside the wire (``api`` error handler, ``fhir`` outcome,
``hl7v2`` ACK). Messages must never carry PHI or secrets: callers pass identifiers, not values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldError:
    """One failing input location, e.g. ``("body", "readings", 0, "systolic")``."""

    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


@dataclass
class VitalbridgeError(Exception):
    message: str
    field_errors: list[FieldError] = field(default_factory=list)

    http_status: ClassVar[int] = 500
    fhir_issue_code: ClassVar[str] = "exception"
    hl7_ack_code: ClassVar[str] = "AE"
    error_code: ClassVar[str] = "internal_error"
    # Worth trying again later unchanged (network, overload), as opposed to needing a fix.
    transient: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def as_problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error_code, "detail": self.message}
        if self.field_errors:
            body["errors"] = [e.as_dict() for e in self.field_errors]
        return body


class ConfigurationError(VitalbridgeError):
    error_code = "configuration_error"


class BadRequest(VitalbridgeError):
    http_status = 400
    fhir_issue_code = "invalid"
    hl7_ack_code = "AR"
    error_code = "bad_request"


class NotFound(VitalbridgeError):
    http_status = 404
    fhir_issue_code = "not-found"
    error_code = "not_found"


class Unauthorized(VitalbridgeError):
    http_status = 401
    fhir_issue_code = "login"
    hl7_ack_code = "AR"
    error_code = "unauthorized"


class Forbidden(VitalbridgeError):
    http_status = 403
    fhir_issue_code = "forbidden"
    hl7_ack_code = "AR"
    error_code = "forbidden"


class Conflict(VitalbridgeError):
    http_status = 409
    fhir_issue_code = "conflict"
    error_code = "conflict"


class PayloadTooLarge(VitalbridgeError):
    http_status = 413
    fhir_issue_code = "too-long"
    error_code = "payload_too_large"


class ValidationFailed(VitalbridgeError):
    http_status = 422
    fhir_issue_code = "invalid"
    error_code = "validation_failed"


@dataclass
class RateLimited(VitalbridgeError):
    retry_after: float = 1.0

    http_status: ClassVar[int] = 429
    fhir_issue_code: ClassVar[str] = "throttled"
    error_code: ClassVar[str] = "rate_limited"
    transient: ClassVar[bool] = True


@dataclass
class EhrRateLimited(RateLimited):
    """The EHR answered 429; ``retry_after`` comes from its ``Retry-After`` header.

    ``minute_window``: there was no Retry-After, which on eCW means "blocked until the minute
    resets"; ``retry_after`` is then the time to the start of the next minute.
    """

    minute_window: bool = False

    error_code: ClassVar[str] = "ehr_rate_limited"


@dataclass
class UpstreamError(VitalbridgeError):
    """The EHR or a gateway failed. ``status_code`` is the upstream HTTP status, if any.

    ``diagnostics`` is the upstream's own explanation (e.g. OperationOutcome text). It is shown
    to the API caller and kept out of ``str()`` so that logging the exception cannot copy
    whatever the EHR echoed back.
    """

    status_code: int | None = None
    diagnostics: str | None = field(default=None, repr=False)

    http_status: ClassVar[int] = 502
    fhir_issue_code: ClassVar[str] = "transient"
    error_code: ClassVar[str] = "upstream_error"
    transient: ClassVar[bool] = True

    def as_problem(self) -> dict[str, Any]:
        body = super().as_problem()
        if self.status_code is not None:
            body["upstream_status"] = self.status_code
        if self.diagnostics:
            body["diagnostics"] = self.diagnostics
        return body


@dataclass
class EhrUnavailable(UpstreamError):
    """5xx, timeout, refused or reset connection: the same request may well work later."""

    error_code: ClassVar[str] = "ehr_unavailable"


@dataclass
class EhrRejected(UpstreamError):
    """A 4xx the EHR would give again: retrying unchanged cannot help (SPEC §7)."""

    fhir_issue_code: ClassVar[str] = "processing"
    error_code: ClassVar[str] = "ehr_rejected"
    transient: ClassVar[bool] = False


@dataclass
class EhrForbidden(EhrRejected):
    fhir_issue_code: ClassVar[str] = "forbidden"
    error_code: ClassVar[str] = "ehr_forbidden"


@dataclass
class EhrNotFound(EhrRejected):
    fhir_issue_code: ClassVar[str] = "not-found"
    error_code: ClassVar[str] = "ehr_not_found"


@dataclass
class EhrUnsupported(EhrRejected):
    """The EHR does not offer the interaction at all (FHIR R4 http.html: 405, 501, an
    OperationOutcome ``not-supported``, 404 on a type-level URL, or its CapabilityStatement says
    so). A configuration problem of the practice, never a missing resource: nothing is re-linked."""

    fhir_issue_code: ClassVar[str] = "not-supported"
    error_code: ClassVar[str] = "ehr_not_supported"


@dataclass
class EhrInvalid(EhrRejected):
    fhir_issue_code: ClassVar[str] = "invalid"
    error_code: ClassVar[str] = "ehr_invalid"


@dataclass
class EhrSubjectRefused(EhrInvalid):
    """A 400/422 whose OperationOutcome points at the subject (``Observation.subject``): the EHR
    no longer knows the patient by that id, typically after a merge (SPEC §4 "Merged patients")."""

    error_code: ClassVar[str] = "ehr_subject_refused"


@dataclass
class EhrDataRejected(EhrInvalid):
    """eCW refused this Observation's content with a numeric code (611 INVALID_UNIT, 612, 613…).

    ``ehr_code`` is the numeric code; the message says what a person should change.
    """

    ehr_code: int | None = None

    error_code: ClassVar[str] = "ehr_data_rejected"


@dataclass
class EhrPracticeSetup(EhrRejected):
    """The EHR practice is not set up for what we ask (eCW 308: no default write-back user).
    Nothing the hub resends can help until someone at the practice changes eCW."""

    ehr_code: int | None = None

    fhir_issue_code: ClassVar[str] = "business-rule"
    error_code: ClassVar[str] = "ehr_practice_setup"


@dataclass
class EhrAuthError(UpstreamError):
    """The EHR's token endpoint refused; ``oauth_error`` is its RFC 6749 §5.2 ``error`` code."""

    oauth_error: str | None = None

    fhir_issue_code: ClassVar[str] = "login"
    error_code: ClassVar[str] = "ehr_auth_failed"
    transient: ClassVar[bool] = False

    def as_problem(self) -> dict[str, Any]:
        body = super().as_problem()
        if self.oauth_error:
            body["oauth_error"] = self.oauth_error
        return body


@dataclass
class EhrAuthUnavailable(EhrAuthError):
    """The token endpoint could not be reached or failed (5xx): not a credentials problem."""

    fhir_issue_code: ClassVar[str] = "transient"
    error_code: ClassVar[str] = "ehr_auth_unavailable"
    transient: ClassVar[bool] = True


@dataclass
class EhrReauthorize(EhrAuthError):
    """The practice's standalone (user-consent) grant is unusable — never given, revoked, expired,
    or its refresh refused: a user must authorize again. Transient for the work that needs it:
    deliveries wait (and go through once a user re-authorizes) instead of dead-lettering."""

    error_code: ClassVar[str] = "ehr_reauthorize"
    transient: ClassVar[bool] = True
