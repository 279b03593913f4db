"""The one door every push goes through (SPEC §8, DESIGN principle 6).

``build_message(notice, token)`` is the only function that produces an FCM v1 message. What a
push can say is decided by its input type, not filtered afterwards: a ``PushNotice`` holds an
opaque alert id (a UUID, checked), an ``AlertType``, a ``Severity`` and a ``PushAction`` — enums
only, so a name, a date of birth, an MRN, a reading value or a clinician's note has no field to
travel in. Title and body come from ``CATALOGUE``, fixed strings that identify nobody.

Defence in depth: the finished message is checked against ``check_message``, an exact
allow-list of keys and values, before it may be sent. Anything else raises ``UnsafePushPayload``
and nothing is sent.

Message shape (FCM HTTP v1 ``projects.messages``)::

    {"message": {
        "token": <registration token>,
        "notification": {"title": …, "body": …},
        "data": {"alert_id", "alert_type", "severity", "action"},        # strings, as FCM requires
        "android": {"priority": HIGH|NORMAL, "collapse_key": <alert id>,
                    "notification": {"tag": <alert id>}},
        "apns": {"headers": {"apns-priority": "10"|"5", "apns-collapse-id": <alert id>,
                             "apns-push-type": "alert"},
                 "payload": {"aps": {"alert": {"title", "body"}, "content-available": 1,
                                     "mutable-content": 1}}}}}

The alert id is the collapse key and tag, so the "resolved" push replaces the "new alert" push
on the lock screen instead of stacking under it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vitalbridge.errors import VitalbridgeError
from vitalbridge.notify.codes import AlertType, PushAction
from vitalbridge.triage.codes import Severity

# FCM registration tokens are URL-safe base64 with ':' separators; a few hundred characters.
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_:\-.]{20,4096}$")
_CANONICAL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_URGENT = frozenset({Severity.critical, Severity.high})


class UnsafePushPayload(VitalbridgeError):
    """A message failed the allow-list: a defect in the hub, and nothing was sent."""

    error_code = "unsafe_push_payload"


@dataclass(frozen=True)
class Copy:
    title: str
    body: str


_SEVERITY_WORD = {
    Severity.critical: "critical",
    Severity.high: "high-priority",
    Severity.medium: "",
    Severity.low: "",
}


def _catalogue() -> dict[tuple[PushAction, Severity], Copy]:
    table: dict[tuple[PushAction, Severity], Copy] = {}
    for severity in Severity:
        word = _SEVERITY_WORD[severity]
        label = f"{word} " if word else ""
        table[(PushAction.open_alert, severity)] = Copy(
            f"New {label}alert", f"A new {label}reading needs review — open vitalbridge"
        )
        table[(PushAction.alert_escalated, severity)] = Copy(
            f"Unacknowledged {label}alert", f"A {label}alert is waiting for someone — open vitalbridge"
        )
        table[(PushAction.alert_resolved, severity)] = Copy(
            "Alert resolved", "An alert was resolved — open vitalbridge for details"
        )
    return table


# Deliberately silent about the alert type: a lock screen is seen by whoever holds the phone.
CATALOGUE: Mapping[tuple[PushAction, Severity], Copy] = _catalogue()
_TITLES = frozenset(c.title for c in CATALOGUE.values())
_BODIES = frozenset(c.body for c in CATALOGUE.values())


@dataclass(frozen=True)
class PushNotice:
    """Everything a push may carry. Types are checked at run time too: a caller that passes a
    string where an enum belongs (say, a rule's free-text name) is stopped here."""

    alert_id: uuid.UUID
    alert_type: AlertType
    severity: Severity
    action: PushAction

    def __post_init__(self) -> None:
        checks: tuple[tuple[str, object, type], ...] = (
            ("alert_id", self.alert_id, uuid.UUID),
            ("alert_type", self.alert_type, AlertType),
            ("severity", self.severity, Severity),
            ("action", self.action, PushAction),
        )
        for name, value, kind in checks:
            if not isinstance(value, kind):
                raise UnsafePushPayload(f"PushNotice.{name} must be a {kind.__name__}")

    @classmethod
    def of(cls, *, alert_id: str, rule_code: str, severity: Severity, action: PushAction) -> PushNotice:
        """From stored alert fields: the id must parse as a UUID; the rule code maps onto the
        closed ``AlertType`` list (a program's own rule names become ``other``)."""
        try:
            parsed = uuid.UUID(alert_id)
        except (ValueError, AttributeError, TypeError):
            raise UnsafePushPayload("an alert id that is not a UUID cannot be pushed") from None
        return cls(parsed, AlertType.of_rule(rule_code), Severity(severity), PushAction(action))


def build_message(notice: PushNotice, token: str) -> dict[str, Any]:
    """The FCM v1 request body for one device, checked against the allow-list."""
    if not isinstance(notice, PushNotice):
        raise UnsafePushPayload("only a PushNotice can be pushed")
    if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
        raise UnsafePushPayload("the registration token has an impossible shape")
    copy = CATALOGUE[(notice.action, notice.severity)]
    alert_id = str(notice.alert_id)
    urgent = notice.severity in _URGENT and notice.action is not PushAction.alert_resolved
    message = {
        "message": {
            "token": token,
            "notification": {"title": copy.title, "body": copy.body},
            "data": {
                "alert_id": alert_id,
                "alert_type": notice.alert_type.value,
                "severity": notice.severity.value,
                "action": notice.action.value,
            },
            "android": {
                "priority": "HIGH" if urgent else "NORMAL",
                "collapse_key": alert_id,
                "notification": {"tag": alert_id},
            },
            "apns": {
                "headers": {
                    # APNs: 10 = deliver now (wakes the device), 5 = when convenient for battery.
                    "apns-priority": "10" if urgent else "5",
                    "apns-collapse-id": alert_id,
                    "apns-push-type": "alert",
                },
                "payload": {
                    "aps": {
                        "alert": {"title": copy.title, "body": copy.body},
                        # Let the app wake and fetch details over the API, and decorate the
                        # notification in its extension; neither puts data in the payload.
                        "content-available": 1,
                        "mutable-content": 1,
                    }
                },
            },
        }
    }
    check_message(message)
    return message


# --- the allow-list -------------------------------------------------------------------------

Leaf = Callable[[Any], bool]
Schema = Mapping[str, "Schema | Leaf"]


def _is_uuid(v: Any) -> bool:
    return isinstance(v, str) and bool(_CANONICAL_UUID.match(v))


def _one_of(values: frozenset[Any]) -> Leaf:
    return lambda v: isinstance(v, str) and v in values


def _exactly(value: int) -> Leaf:
    return lambda v: type(v) is int and v == value


_TITLE = _one_of(_TITLES)
_BODY = _one_of(_BODIES)

SCHEMA: Schema = {
    "message": {
        "token": lambda v: isinstance(v, str) and bool(TOKEN_PATTERN.match(v)),
        "notification": {"title": _TITLE, "body": _BODY},
        "data": {
            "alert_id": _is_uuid,
            "alert_type": _one_of(frozenset(t.value for t in AlertType)),
            "severity": _one_of(frozenset(s.value for s in Severity)),
            "action": _one_of(frozenset(a.value for a in PushAction)),
        },
        "android": {
            "priority": _one_of(frozenset({"HIGH", "NORMAL"})),
            "collapse_key": _is_uuid,
            "notification": {"tag": _is_uuid},
        },
        "apns": {
            "headers": {
                "apns-priority": _one_of(frozenset({"10", "5"})),
                "apns-collapse-id": _is_uuid,
                "apns-push-type": _one_of(frozenset({"alert"})),
            },
            "payload": {
                "aps": {
                    "alert": {"title": _TITLE, "body": _BODY},
                    "content-available": _exactly(1),
                    "mutable-content": _exactly(1),
                }
            },
        },
    }
}


def _walk(node: Any, schema: Schema, path: str) -> None:
    if not isinstance(node, dict):
        raise UnsafePushPayload(f"{path or 'message'} must be an object")
    extra = set(node) - set(schema)
    missing = set(schema) - set(node)
    if extra or missing:
        # Counts and the schema's own key names only: an unexpected key could itself be PHI.
        raise UnsafePushPayload(
            f"{path or 'message'}: {len(extra)} key(s) outside the allow-list, missing {sorted(missing)}"
        )
    for key, rule in schema.items():
        where = f"{path}.{key}" if path else key
        if isinstance(rule, Mapping):
            _walk(node[key], rule, where)
        elif not rule(node[key]):
            raise UnsafePushPayload(f"{where}: value outside the allow-list")


def check_message(message: Any) -> None:
    """Raise ``UnsafePushPayload`` unless ``message`` is exactly what the allow-list permits,
    and the alert id is the same everywhere it appears."""
    _walk(message, SCHEMA, "")
    m = message["message"]
    ids = {
        m["data"]["alert_id"],
        m["android"]["collapse_key"],
        m["android"]["notification"]["tag"],
        m["apns"]["headers"]["apns-collapse-id"],
    }
    if len(ids) != 1:
        raise UnsafePushPayload("the alert id differs between the message's blocks")
    if m["notification"] != m["apns"]["payload"]["aps"]["alert"]:
        raise UnsafePushPayload("the notification text differs between the message's blocks")
