"""The message checks of the fake FCM endpoint: what FCM's v1 API refuses with 400 INVALID_ARGUMENT.

``validate_message(message)`` returns the first ``(field path, problem)`` or None. It covers what
the hub could get wrong: exactly one target, string-only data without reserved keys, the
notification, android and apns blocks' known fields and types, and the 4 KB payload limit.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TTL = re.compile(r"^\d+(\.\d{1,9})?s$")
_MAX_PAYLOAD_BYTES = 4096

_MESSAGE_KEYS = {
    "name",
    "data",
    "notification",
    "android",
    "webpush",
    "apns",
    "fcm_options",
    "token",
    "topic",
    "condition",
}
_NOTIFICATION_KEYS = {"title", "body", "image"}
_ANDROID_KEYS = {
    "collapse_key",
    "priority",
    "ttl",
    "restricted_package_name",
    "data",
    "notification",
    "fcm_options",
    "direct_boot_ok",
}
_ANDROID_NOTIFICATION_KEYS = {
    "title",
    "body",
    "icon",
    "color",
    "sound",
    "tag",
    "click_action",
    "body_loc_key",
    "body_loc_args",
    "title_loc_key",
    "title_loc_args",
    "channel_id",
    "ticker",
    "sticky",
    "event_time",
    "local_only",
    "notification_priority",
    "default_sound",
    "default_vibrate_timings",
    "default_light_settings",
    "vibrate_timings",
    "visibility",
    "notification_count",
    "image",
}
_APNS_KEYS = {"headers", "payload", "fcm_options", "live_activity_token"}
_RESERVED_DATA_KEYS = {"from", "notification", "message_type"}


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def validate_message(message: Any) -> tuple[str, str] | None:
    """FCM's checks on a v1 ``message``: ``(field, problem)`` for the first violation, else None."""
    if not isinstance(message, dict):
        return "message", "message must be an object"
    for key in message:
        if key not in _MESSAGE_KEYS:
            return f"message.{key}", f"Invalid JSON payload received. Unknown name \"{key}\" at 'message'"
    targets = [k for k in ("token", "topic", "condition") if k in message]
    if len(targets) != 1:
        return "message", "exactly one of token, topic or condition must be set"
    if "data" in message:
        data = message["data"]
        if not _string_map(data):
            return "message.data", "data values must be strings"
        for key in data:
            if key in _RESERVED_DATA_KEYS or key.startswith(("google.", "gcm.")):
                return f"message.data.{key}", "reserved data key"
    if "notification" in message:
        notification = message["notification"]
        if not _string_map(notification) or not set(notification) <= _NOTIFICATION_KEYS:
            return "message.notification", "notification takes string title, body and image"
    problem = _validate_android(message.get("android")) if "android" in message else None
    if problem:
        return problem
    problem = _validate_apns(message.get("apns")) if "apns" in message else None
    if problem:
        return problem
    if len(json.dumps(message.get("data", {})).encode()) > _MAX_PAYLOAD_BYTES:
        return "message.data", "payload larger than 4096 bytes"
    return None


def _validate_android(android: Any) -> tuple[str, str] | None:
    if not isinstance(android, dict):
        return "message.android", "android must be an object"
    for key in android:
        if key not in _ANDROID_KEYS:
            return f"message.android.{key}", f"Unknown name \"{key}\" at 'message.android'"
    if "priority" in android and android["priority"] not in ("NORMAL", "HIGH"):
        return "message.android.priority", "priority must be NORMAL or HIGH"
    if "collapse_key" in android and not isinstance(android["collapse_key"], str):
        return "message.android.collapse_key", "collapse_key must be a string"
    if "ttl" in android and not (isinstance(android["ttl"], str) and _TTL.match(android["ttl"])):
        return "message.android.ttl", "ttl must be a duration like 3.5s"
    if "data" in android and not _string_map(android["data"]):
        return "message.android.data", "data values must be strings"
    if "notification" in android:
        note = android["notification"]
        if not isinstance(note, dict):
            return "message.android.notification", "notification must be an object"
        for key in note:
            if key not in _ANDROID_NOTIFICATION_KEYS:
                return f"message.android.notification.{key}", f'Unknown name "{key}"'
        if "tag" in note and not isinstance(note["tag"], str):
            return "message.android.notification.tag", "tag must be a string"
    return None


def _validate_apns(apns: Any) -> tuple[str, str] | None:
    if not isinstance(apns, dict):
        return "message.apns", "apns must be an object"
    for key in apns:
        if key not in _APNS_KEYS:
            return f"message.apns.{key}", f"Unknown name \"{key}\" at 'message.apns'"
    headers = apns.get("headers", {})
    if not _string_map(headers):
        return "message.apns.headers", "headers must map strings to strings"
    if headers.get("apns-priority", "10") not in ("5", "10"):
        return "message.apns.headers", "apns-priority must be 5 or 10"
    if len(headers.get("apns-collapse-id", "").encode()) > 64:
        return "message.apns.headers", "apns-collapse-id is longer than 64 bytes"
    payload = apns.get("payload", {})
    if not isinstance(payload, dict):
        return "message.apns.payload", "payload must be an object"
    aps = payload.get("aps", {})
    if not isinstance(aps, dict):
        return "message.apns.payload.aps", "aps must be an object"
    for flag in ("content-available", "mutable-content"):
        if flag in aps and aps[flag] not in (0, 1):
            return f"message.apns.payload.aps.{flag}", f"{flag} must be 0 or 1"
    if len(json.dumps(payload).encode()) > _MAX_PAYLOAD_BYTES:
        return "message.apns.payload", "APNs payload larger than 4096 bytes"
    return None
