"""eClinicalWorks' numeric write-back errors (eCW "Error Code Reference Guide" v1.0, field notes Q5).

eCW answers a refused create/update/delete with a numeric ``status`` and a ``key`` instead of a
FHIR OperationOutcome. Under the ``ecw`` profile (``ecw_error_codes``) the sandbox does the same:

    HTTP 400  {"status": 611, "key": "INVALID_UNIT", "message": "…", "element": "Observation.valueQuantity.code"}

The guide gives no HTTP status per code; the sandbox always uses 400, so clients must classify by
the numeric code. ``message`` and ``element`` never repeat the submitted value.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vitalbridge.sandbox.errors import Issue, SandboxError


class EcwCode(enum.IntEnum):
    INVALID_PATIENT = 100  # the subject is not a patient of this practice (or was merged away)
    INVALID_PROVIDER = 101  # the performer is not a provider of this practice
    UNSUPPORTED_CODING_SYSTEM = 102  # a coding outside LOINC / UCUM
    INVALID_ENCOUNTER = 123  # the referenced encounter does not exist
    DEFAULT_WRITEBACK_USER_NOT_CONFIGURED = 308  # the practice has not set the user writes are filed under
    INVALID_UNIT = 611  # the unit is not one eCW accepts for this vital
    INVALID_VITAL_VALUE = 612  # the value is missing, not a number or impossible
    UNSUPPORTED_OBSERVATION = 613  # not a vital sign eCW's flowsheet takes
    UNSUPPORTED_CHARACTER_FHIR_BUNDLE = 614  # characters eCW cannot store


MESSAGES = {
    EcwCode.INVALID_PATIENT: "Invalid patient",
    EcwCode.INVALID_PROVIDER: "Invalid provider",
    EcwCode.UNSUPPORTED_CODING_SYSTEM: "Unsupported coding system",
    EcwCode.INVALID_ENCOUNTER: "Invalid encounter",
    EcwCode.DEFAULT_WRITEBACK_USER_NOT_CONFIGURED: "Default write-back user is not configured for this practice",
    EcwCode.INVALID_UNIT: "Invalid unit",
    EcwCode.INVALID_VITAL_VALUE: "Invalid vital value",
    EcwCode.UNSUPPORTED_OBSERVATION: "Unsupported observation",
    EcwCode.UNSUPPORTED_CHARACTER_FHIR_BUNDLE: "Unsupported character in FHIR resource",
}


class EcwError(SandboxError):
    def __init__(self, code: EcwCode, element: str | None = None) -> None:
        super().__init__(MESSAGES[code], status=400)
        self.code = code
        self.element = element

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": int(self.code), "key": self.code.name, "message": MESSAGES[self.code]}
        if self.element:
            body["element"] = self.element
        return body


def _code_of(issue: Issue) -> EcwCode:
    where = issue.expression[0] if issue.expression else ""
    if where.startswith("Observation.subject"):
        return EcwCode.INVALID_PATIENT
    if where.endswith("valueQuantity.code"):
        return EcwCode.INVALID_UNIT
    if where.endswith(".system"):
        return EcwCode.UNSUPPORTED_CODING_SYSTEM
    if where.endswith(("valueQuantity.value", "valueQuantity")):
        return EcwCode.INVALID_VITAL_VALUE
    return EcwCode.UNSUPPORTED_OBSERVATION


# When several things are wrong eCW reports one code; the most specific wins.
_PRECEDENCE = (
    EcwCode.INVALID_PATIENT,
    EcwCode.INVALID_UNIT,
    EcwCode.INVALID_VITAL_VALUE,
    EcwCode.UNSUPPORTED_CODING_SYSTEM,
    EcwCode.UNSUPPORTED_OBSERVATION,
)


def from_issues(issues: Sequence[Issue]) -> EcwError:
    """The one eCW error a list of validation issues becomes."""
    coded = [(_code_of(i), i) for i in issues]
    for code in _PRECEDENCE:
        for found, issue in coded:
            if found is code:
                return EcwError(code, issue.expression[0] if issue.expression else None)
    return EcwError(EcwCode.UNSUPPORTED_OBSERVATION)


async def ecw_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EcwError)
    # Plain JSON, not FHIR: eCW's write-back errors are not OperationOutcomes.
    return JSONResponse(exc.body(), status_code=exc.status)
