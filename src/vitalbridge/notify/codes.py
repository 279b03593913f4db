"""Code lists of push notifications (SPEC §8): what a PHI-free push may say, and push states.

A push carries codes from these enums and an opaque alert id, nothing else. ``AlertType`` is a
closed list on purpose: a program may name its own rules freely (``glucose_very_low``, or a name
that happens to identify someone), and such free text must never reach a phone, so unknown rule
codes travel as ``other``.
"""

from __future__ import annotations

import enum


class Platform(enum.StrEnum):
    """The device a registration token belongs to; it decides nothing in the message (both
    platform blocks are always set) but tells operators which app to look at."""

    ios = "ios"
    android = "android"


class PushAction(enum.StrEnum):
    """What the app should do with the push; the app fetches details over the API."""

    open_alert = "open_alert"  # a new alert: open it
    alert_escalated = "alert_escalated"  # a critical alert nobody acknowledged: the on-call list is asked
    alert_resolved = "alert_resolved"  # the alert was closed: clear it from the lock screen


class AlertType(enum.StrEnum):
    """The rule behind an alert: the default rule codes of triage (docs/triage.md), else ``other``."""

    bp_systolic_high = "bp_systolic_high"
    bp_systolic_low = "bp_systolic_low"
    bp_diastolic_high = "bp_diastolic_high"
    heart_rate_high = "heart_rate_high"
    heart_rate_low = "heart_rate_low"
    spo2_low = "spo2_low"
    glucose_low = "glucose_low"
    glucose_high = "glucose_high"
    weight_gain_24h = "weight_gain_24h"
    weight_gain_7d = "weight_gain_7d"
    missed_readings = "missed_readings"
    other = "other"  # a program's or patient's own rule: its name is free text and stays home

    @classmethod
    def of_rule(cls, rule_code: str) -> AlertType:
        try:
            return cls(rule_code)
        except ValueError:
            return cls.other


class PushStatus(enum.StrEnum):
    """One ``push_outbox`` row: one notification to one device (mirrors the EHR outbox)."""

    pending = "pending"  # waiting for next_attempt_at (a retry, or quiet hours ending)
    in_flight = "in_flight"  # claimed by a sender under a lease
    sent = "sent"  # FCM accepted it
    dead = "dead"  # permanent failure or too old; last_error says why
    cancelled = "cancelled"  # the device token was pruned or removed before it was sent


class TokenStatus(enum.StrEnum):
    active = "active"
    pruned = "pruned"  # FCM said the token is unregistered or invalid: never sent to again


class FcmErrorCode(enum.StrEnum):
    """``google.firebase.fcm.v1.FcmError.errorCode`` values, as FCM documents them."""

    UNSPECIFIED_ERROR = "UNSPECIFIED_ERROR"  # no further information
    INVALID_ARGUMENT = "INVALID_ARGUMENT"  # 400: with an FcmError detail, the token is invalid
    UNREGISTERED = "UNREGISTERED"  # 404: the app instance is gone (uninstalled, token expired)
    SENDER_ID_MISMATCH = "SENDER_ID_MISMATCH"  # 403: the token belongs to another Firebase project
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"  # 429: sending too fast (project, device or topic)
    UNAVAILABLE = "UNAVAILABLE"  # 503: FCM overloaded
    INTERNAL = "INTERNAL"  # 500: FCM failed
    THIRD_PARTY_AUTH_ERROR = "THIRD_PARTY_AUTH_ERROR"  # 401: the APNs certificate / web push key was refused


class SendOutcome(enum.StrEnum):
    """What the sender makes of one FCM answer (retry policy is data, not message parsing)."""

    sent = "sent"
    prune_token = "prune_token"  # the token is dead: stop using it, never retry
    retry = "retry"  # transient: try again later (Retry-After honoured)
    permanent = "permanent"  # will not succeed by retrying: an operator must act
