"""The one error tree of vitalbridge, and what each error becomes on each wire.

    VitalbridgeError                  500  exception   AE
    ├── ConfigurationError            500  exception   AE   (operator must fix settings)
    ├── NotFound                      404  not-found   AE
    ├── Unauthorized                  401  login       AR
    ├── Forbidden                     403  forbidden   AR
    ├── Conflict                      409  conflict    AE
    ├── PayloadTooLarge               413  too-long    AE
    ├── ValidationFailed              422  invalid     AE   (carries field-level errors)
    ├── RateLimited                   429  throttled   AE   (carries retry_after)
    └── UpstreamError                 502  transient   AE   (the EHR or a gateway failed)

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


class UpstreamError(VitalbridgeError):
    http_status = 502
    fhir_issue_code = "transient"
    error_code = "upstream_error"
