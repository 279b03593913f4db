"""eClinicalWorks' numeric write-back errors and what each asks of us (field notes Q5, eCW "Error
Code Reference Guide" v1.0).

eCW answers a refused create with ``{"status": 611, "key": "INVALID_UNIT", …}`` rather than an
OperationOutcome. The hub classifies such an answer by the numeric code (never by its message),
into one of four classes, each with an error type the retry policy knows and a sentence telling a
person what to do:

    class          codes                      error                 delivery does
    patient        100                        EhrSubjectRefused     re-link the patient, then resend
    practice_setup 308                        EhrPracticeSetup      dead letter: the practice admin acts
    invalid_data   102, 611, 612, 613, 614    EhrDataRejected       dead letter: fix the mapping/reading
                   101, 123
    (unknown)      any other                  by HTTP status        5xx transient, 4xx EhrRejected
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class EcwClass(enum.StrEnum):
    patient = "patient"  # the EHR does not know the subject by this id (merged, wrong practice)
    practice_setup = "practice_setup"  # the practice must change something in eCW
    invalid_data = "invalid_data"  # this Observation's content is refused; resending it unchanged cannot help


@dataclass(frozen=True)
class EcwCode:
    code: int
    key: str
    kind: EcwClass
    action: str  # what a person should do, shown with the dead letter


CODES: dict[int, EcwCode] = {
    c.code: c
    for c in (
        EcwCode(100, "INVALID_PATIENT", EcwClass.patient, "re-link the patient to the chart eCW now uses"),
        EcwCode(
            101,
            "INVALID_PROVIDER",
            EcwClass.invalid_data,
            "the performer is not a provider of this practice: check the practice's provider mapping",
        ),
        EcwCode(
            102,
            "UNSUPPORTED_CODING_SYSTEM",
            EcwClass.invalid_data,
            "eCW does not accept a coding system used (LOINC and UCUM only): check the reading-type mapping",
        ),
        EcwCode(
            123,
            "INVALID_ENCOUNTER",
            EcwClass.invalid_data,
            "the referenced encounter does not exist in eCW: send the Observation without an encounter",
        ),
        EcwCode(
            308,
            "DEFAULT_WRITEBACK_USER_NOT_CONFIGURED",
            EcwClass.practice_setup,
            "write-back user not configured for this practice: ask the practice admin to set the default "
            "write-back user for FHIR write-back in eCW, then replay this dead letter",
        ),
        EcwCode(
            611,
            "INVALID_UNIT",
            EcwClass.invalid_data,
            "eCW refused the unit of this vital: check the UCUM unit the hub sends for this reading type",
        ),
        EcwCode(
            612,
            "INVALID_VITAL_VALUE",
            EcwClass.invalid_data,
            "eCW refused the value of this vital: check the reading (device error or wrong unit) and replay "
            "it once corrected",
        ),
        EcwCode(
            613,
            "UNSUPPORTED_OBSERVATION",
            EcwClass.invalid_data,
            "eCW does not take this kind of Observation for this practice: ask the practice admin to enable "
            "write-back for this vital, or stop sending this reading type to the practice",
        ),
        EcwCode(
            614,
            "UNSUPPORTED_CHARACTER_FHIR_BUNDLE",
            EcwClass.invalid_data,
            "eCW refused a character in the resource: check free-text fields (device names, notes)",
        ),
    )
}


def ecw_error(body: Any) -> tuple[int, str] | None:
    """``(code, key)`` when ``body`` is an eCW numeric error rather than FHIR; else None."""
    if not isinstance(body, dict) or "resourceType" in body:
        return None
    status, key = body.get("status"), body.get("key")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not isinstance(key, str):
        return None
    # Keys are upper-case identifiers; anything else is not eCW's shape (and is not stored).
    return status, key if key.replace("_", "").isalnum() and len(key) <= 64 else "UNKNOWN"
