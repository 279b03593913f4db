"""Retry policy as data (SPEC §7 "Delivery", STYLE 6): what a failed delivery attempt leads to.

A failure is classified by its exception TYPE from the error tree, never by its message:

    exception                                   action        ambiguous  notes
    EhrRateLimited / RateLimited (429, bucket)  wait          no         Retry-After, bucket slowed by the client
    EhrUnavailable (5xx, 408, timeout, reset)   retry         yes        may have been stored: search before retrying
    EhrAuthUnavailable (token endpoint down)    retry         no
    EhrReauthorize (user grant gone)            retry         no         waits for a user to re-authorize (max age)
    Hl7TransportError / CommitError / BadAck    retry         yes        same control id on resend
    EhrUnsupported (405/501, not-supported)     dead          no         configuration: the EHR lacks the interaction
    EhrNotFound (404/410)                       relink        no         patient unknown or merged
    EhrSubjectRefused (400/422 at .subject)     relink        no         the EHR refuses the subject (merged; eCW 100)
    EhrPracticeSetup (eCW 308)                  dead          no         practice_setup: the practice admin must act
    EhrDataRejected (eCW 611/612/613/102/614)   dead          no         invalid_data: fix the mapping or reading
    EhrAuthError (401 after a fresh token)      dead          no
    EhrForbidden / EhrInvalid / EhrRejected     dead          no         403, 400/422, 409/412 …: OperationOutcome kept
    Hl7Nak (AE/AR)                              dead          no
    ConfigurationError / ValidationFailed       dead          no         needs an operator
    anything else (a defect)                    retry         yes        never lose a reading to a bug

``retry`` first tries again in the same call (``quick_retries`` times, exponential backoff with
jitter), then returns the row to the outbox with a growing, capped delay until ``max_age``; only
then does it become a dead letter, so a transient outage never dead-letters within minutes.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from vitalbridge.errors import (
    ConfigurationError,
    EhrAuthError,
    EhrAuthUnavailable,
    EhrNotFound,
    EhrReauthorize,
    EhrRejected,
    EhrSubjectRefused,
    EhrUnavailable,
    EhrUnsupported,
    RateLimited,
    ValidationFailed,
)
from vitalbridge.hl7v2.errors import Hl7DeliveryError, Hl7Nak
from vitalbridge.settings import Settings


class Action(enum.StrEnum):
    retry = "retry"  # transient: quick retries, then back to the outbox with backoff
    wait = "wait"  # rate limited: come back after Retry-After
    relink = "relink"  # the subject patient is unknown to the EHR: hand to the patients re-link hook
    dead = "dead"  # permanent: dead letter with the reason shown


@dataclass(frozen=True)
class Rule:
    exception: type[BaseException]
    action: Action
    # The request may have been processed although we got no answer: look before sending again.
    ambiguous: bool = False


# First match wins, so subclasses come before their bases.
RULES: tuple[Rule, ...] = (
    Rule(RateLimited, Action.wait),
    Rule(EhrAuthUnavailable, Action.retry),
    Rule(EhrReauthorize, Action.retry),
    Rule(EhrAuthError, Action.dead),
    # Before EhrNotFound's relink: a missing route is not a missing patient (issue 12, item 7).
    Rule(EhrUnsupported, Action.dead),
    Rule(EhrNotFound, Action.relink),
    Rule(EhrSubjectRefused, Action.relink),
    Rule(EhrRejected, Action.dead),
    Rule(EhrUnavailable, Action.retry, ambiguous=True),
    Rule(Hl7Nak, Action.dead),
    Rule(Hl7DeliveryError, Action.retry, ambiguous=True),
    Rule(ConfigurationError, Action.dead),
    Rule(ValidationFailed, Action.dead),
)
DEFECT = Rule(Exception, Action.retry, ambiguous=True)


def classify(exc: BaseException) -> Rule:
    for rule in RULES:
        if isinstance(exc, rule.exception):
            return rule
    return DEFECT


@dataclass(frozen=True)
class RetryPolicy:
    quick_retries: int = 3
    quick_backoff_s: float = 0.5
    retry_base_s: float = 10.0
    retry_cap_s: float = 300.0
    max_age_s: float = 72 * 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            quick_retries=settings.delivery_quick_retries,
            quick_backoff_s=settings.delivery_quick_backoff_s,
            retry_base_s=settings.delivery_retry_base_s,
            retry_cap_s=settings.delivery_retry_cap_s,
            max_age_s=settings.delivery_max_age_s,
        )

    def quick_delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Pause before in-call retry number ``retry`` (1-based): base·2^(n-1), full jitter on top half."""
        return _jittered(self.quick_backoff_s * (2 ** (retry - 1)), rng)

    def requeue_delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Delay before the row is due again after ``attempts`` failed deliveries, capped."""
        raw = self.retry_base_s * (2 ** max(0, min(attempts - 1, 30)))
        return min(self.retry_cap_s, _jittered(raw, rng))

    def expired(self, age_s: float) -> bool:
        return age_s >= self.max_age_s


def _jittered(delay: float, rng: random.Random | None) -> float:
    # Half fixed, half random: spreads retries of many rows without ever retrying at once.
    r = (rng or random).random()
    return delay / 2 + r * delay / 2
