"""The retry policy table (SPEC §7 "Delivery"; delivery/policy.py): every exception type in the
error tree leads to the documented decision, and the backoff arithmetic stays inside its bounds."""

from __future__ import annotations

import random

import pytest

from vitalbridge.delivery.policy import DEFECT, RULES, Action, RetryPolicy, classify
from vitalbridge.ehr.ecw_codes import CODES, EcwClass, ecw_error
from vitalbridge.errors import (
    BadRequest,
    ConfigurationError,
    EhrAuthError,
    EhrAuthUnavailable,
    EhrDataRejected,
    EhrForbidden,
    EhrInvalid,
    EhrNotFound,
    EhrPracticeSetup,
    EhrRateLimited,
    EhrReauthorize,
    EhrRejected,
    EhrSubjectRefused,
    EhrUnavailable,
    EhrUnsupported,
    RateLimited,
    UpstreamError,
    ValidationFailed,
)
from vitalbridge.hl7v2.codes import AckCode, ErrorCode
from vitalbridge.hl7v2.errors import (
    Hl7AckTimeout,
    Hl7ApplicationError,
    Hl7ApplicationReject,
    Hl7BadAck,
    Hl7CommitError,
    Hl7DeliveryError,
    Hl7MessageInvalid,
    Hl7Nak,
    Hl7TransportError,
)

CASES: list[tuple[BaseException, Action, bool]] = [
    # Hub-side bucket empty and the EHR's 429: wait for Retry-After, nothing was processed.
    (RateLimited("bucket empty", retry_after=2.0), Action.wait, False),
    (EhrRateLimited("429", retry_after=1.0), Action.wait, False),
    # eCW's 429 without Retry-After: wait for the next minute, nothing was processed.
    (EhrRateLimited("429", retry_after=42.0, minute_window=True), Action.wait, False),
    # 5xx, 408, timeouts, resets: the request may have been stored, so search before resending.
    (EhrUnavailable("503", status_code=503), Action.retry, True),
    (EhrUnavailable("timeout"), Action.retry, True),
    (EhrUnavailable("reset"), Action.retry, True),
    # The token endpoint is down: no Observation was sent, nothing to look for.
    (EhrAuthUnavailable("token endpoint 503", status_code=503), Action.retry, False),
    (EhrAuthError("401 after a fresh token", status_code=401), Action.dead, False),
    (EhrNotFound("404", status_code=404), Action.relink, False),
    # A standalone grant that is gone: deliveries wait for a user to re-authorize (issue 12, item 6).
    (EhrReauthorize("re-authorize"), Action.retry, False),
    # A missing route or interaction is configuration, never a missing patient (issue 12, item 7).
    (EhrUnsupported("405 on POST Observation", status_code=405), Action.dead, False),
    (EhrSubjectRefused("422 at Observation.subject", status_code=422), Action.relink, False),
    (EhrForbidden("403", status_code=403), Action.dead, False),
    (EhrInvalid("422", status_code=422), Action.dead, False),
    (EhrRejected("409", status_code=409), Action.dead, False),
    # eCW numeric codes: 308 needs the practice admin, 611/612/613 need the data fixed.
    (EhrPracticeSetup("eCW 308", status_code=400, ehr_code=308), Action.dead, False),
    (EhrDataRejected("eCW 611", status_code=400, ehr_code=611), Action.dead, False),
    (EhrRejected("412", status_code=412), Action.dead, False),
    (Hl7Nak("AE", ack_code=AckCode.AE), Action.dead, False),
    (Hl7ApplicationError("AE"), Action.dead, False),
    (Hl7ApplicationReject("AR"), Action.dead, False),
    (Hl7TransportError("refused"), Action.retry, True),
    (Hl7AckTimeout("no ACK"), Action.retry, True),
    (Hl7CommitError("CE"), Action.retry, True),
    (Hl7BadAck("garbled ACK"), Action.retry, True),
    (Hl7DeliveryError("other"), Action.retry, True),
    (Hl7MessageInvalid("cannot build the ORU", hl7_error=ErrorCode.internal_error), Action.dead, False),
    (ConfigurationError("no practice"), Action.dead, False),
    (ValidationFailed("invalid Observation"), Action.dead, False),
    # A defect must never lose a reading: retried, and treated as ambiguous.
    (RuntimeError("bug"), Action.retry, True),
    (KeyError("bug"), Action.retry, True),
    (UpstreamError("unclassified upstream failure"), Action.retry, True),
    (BadRequest("a hub-side 400 is a defect here"), Action.retry, True),
]


@pytest.mark.parametrize(("exc", "action", "ambiguous"), CASES, ids=lambda v: type(v).__name__)
def test_each_exception_type_maps_to_its_decision(exc: BaseException, action: Action, ambiguous: bool) -> None:
    rule = classify(exc)
    assert (rule.action, rule.ambiguous) == (action, ambiguous)


def test_the_table_lists_subclasses_before_their_bases() -> None:
    # First match wins: a base listed before its subclass would shadow the subclass's rule.
    for i, earlier in enumerate(RULES):
        for later in RULES[i + 1 :]:
            assert not issubclass(later.exception, earlier.exception), (later.exception, earlier.exception)


def test_every_rule_is_reachable_and_unknown_errors_fall_to_the_defect_rule() -> None:
    covered = {classify(exc) for exc, _a, _b in CASES}
    assert set(RULES) <= covered
    assert classify(RuntimeError()) is DEFECT


def test_quick_delays_double_with_jitter_in_the_top_half() -> None:
    policy = RetryPolicy(quick_backoff_s=0.5)
    rng = random.Random(3)
    for retry, base in ((1, 0.5), (2, 1.0), (3, 2.0)):
        for _ in range(50):
            delay = policy.quick_delay(retry, rng)
            assert base / 2 <= delay <= base


def test_requeue_delay_grows_and_is_capped() -> None:
    policy = RetryPolicy(retry_base_s=10.0, retry_cap_s=300.0)
    rng = random.Random(5)
    assert 5.0 <= policy.requeue_delay(1, rng) <= 10.0
    assert 10.0 <= policy.requeue_delay(2, rng) <= 20.0
    assert 40.0 <= policy.requeue_delay(4, rng) <= 80.0
    for attempts in (7, 10, 50, 10_000):
        assert policy.requeue_delay(attempts, rng) <= 300.0
    assert policy.requeue_delay(0, rng) <= 10.0


def test_max_age_decides_when_a_transient_failure_becomes_a_dead_letter() -> None:
    policy = RetryPolicy(max_age_s=72 * 3600.0)
    assert not policy.expired(60.0)  # minutes of outage: still retried
    assert not policy.expired(72 * 3600.0 - 1)
    assert policy.expired(72 * 3600.0)


@pytest.mark.parametrize(
    ("body", "parsed"),
    [
        ({"status": 611, "key": "INVALID_UNIT", "message": "Invalid unit"}, (611, "INVALID_UNIT")),
        (
            {"status": "308", "key": "DEFAULT_WRITEBACK_USER_NOT_CONFIGURED"},
            (308, "DEFAULT_WRITEBACK_USER_NOT_CONFIGURED"),
        ),
        ({"status": 612, "key": "<script>"}, (612, "UNKNOWN")),  # an odd key is not stored
        ({"resourceType": "OperationOutcome", "status": 611, "key": "X"}, None),  # FHIR, not eCW
        ({"status": True, "key": "X"}, None),
        ({"status": 500, "error": "Internal Server Error"}, None),  # no key: a framework error page
        ([611], None),
        (None, None),
    ],
)
def test_ecw_error_bodies_are_recognised_by_shape(body: object, parsed: tuple[int, str] | None) -> None:
    assert ecw_error(body) == parsed


def test_every_known_ecw_code_says_what_to_do() -> None:
    assert {c.code for c in CODES.values() if c.kind is EcwClass.invalid_data} >= {102, 611, 612, 613, 614}
    assert CODES[308].kind is EcwClass.practice_setup
    assert CODES[100].kind is EcwClass.patient
    assert CODES[308].action.startswith("write-back user not configured for this practice: ask the practice admin")
    assert all(c.action and c.key.isupper() for c in CODES.values())
