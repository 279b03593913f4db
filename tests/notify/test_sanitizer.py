"""The PHI sanitizer (SPEC §8): adversarial inputs never reach a push.

The property test drives the real path — patient and alert rows in the database, triage's
alert service, the event dispatcher, the sender's message builder — with arbitrary names, MRNs,
birth dates, phone numbers, notes, reading values and even free-text rule names, and searches
the whole serialized message (android and apns blocks included) for every one of them.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.notify.support import TEST_ACTOR, add_device, fcm_token, make_clinician, make_org
from vitalbridge.db.base import utcnow
from vitalbridge.notify.codes import AlertType, PushAction
from vitalbridge.notify.dispatch import dispatch_events
from vitalbridge.notify.models import PushDevice, PushOutbox
from vitalbridge.notify.sanitizer import (
    CATALOGUE,
    SCHEMA,
    PushNotice,
    UnsafePushPayload,
    build_message,
    check_message,
)
from vitalbridge.notify.sender import message_for
from vitalbridge.patients.models import Patient, Provider
from vitalbridge.runtime import Hub
from vitalbridge.triage import alerts
from vitalbridge.triage.codes import Severity

# Printable text of any script (no control characters or lone surrogates: the database
# refuses those before a push could ever be built).
free_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=4, max_size=40)
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _keys(schema: Any) -> set[str]:
    keys: set[str] = set()
    for key, rule in schema.items():
        keys.add(key)
        if isinstance(rule, dict):
            keys |= _keys(rule)
    return keys


ALLOWED_KEYS = _keys(SCHEMA)
# Text every push may legitimately contain whatever the input: the catalogue, key names, codes.
VOCABULARY = " ".join(
    [
        *(f"{c.title} {c.body}" for c in CATALOGUE.values()),
        *ALLOWED_KEYS,
        *(t.value for t in AlertType),
        *(s.value for s in Severity),
        *(a.value for a in PushAction),
        "HIGH NORMAL alert 10 5 1",
    ]
).lower()


def _all_keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = set(node)
        for value in node.values():
            found |= _all_keys(value)
        return found
    return set()


@PROPERTY
@given(
    given_name=free_text,
    family_name=free_text,
    mrn=st.from_regex(r"[A-Z0-9]{2}[A-Z0-9-]{4,18}", fullmatch=True),
    phone=st.from_regex(r"\+1 \(\d{3}\) \d{3}-\d{4}", fullmatch=True),
    birth_date=st.dates(min_value=date(1900, 1, 1), max_value=date(2024, 12, 31)),
    note=free_text,
    value=st.floats(min_value=20, max_value=600, allow_nan=False).map(lambda v: round(v, 1)),
    rule_code=st.one_of(st.sampled_from([t.value for t in AlertType if t is not AlertType.other]), free_text),
    severity=st.sampled_from(list(Severity)),
)
def test_no_patient_data_ever_reaches_a_push(
    hub: Hub,
    given_name: str,
    family_name: str,
    mrn: str,
    phone: str,
    birth_date: date,
    note: str,
    value: float,
    rule_code: str,
    severity: Severity,
) -> None:
    org_id, practice_id = _org(hub)
    doctor_id = _doctor(hub, org_id)
    token = fcm_token()
    now = utcnow()
    with hub.sessions() as session, session.begin():
        provider = Provider(organization_id=org_id, name=f"Dr {family_name}", user_id=doctor_id)
        session.add(provider)
        session.flush()
        patient = Patient(
            organization_id=org_id,
            practice_id=practice_id,
            ehr_id=str(uuid.uuid4()),
            mrn=mrn,
            given_name=given_name,
            family_name=family_name,
            birth_date=birth_date,
            phone=phone,
            provider_id=provider.id,
            address={"line": [note]},
        )
        session.add(patient)
        session.flush()
        detail = {"metric": "systolic", "value": value, "note": note, "patient": f"{given_name} {family_name}"}
        change = alerts.open_or_update(
            session,
            organization_id=org_id,
            patient_id=patient.id,
            rule_code=rule_code,
            severity=severity,
            at=now,
            actor=TEST_ACTOR,
            detail=detail,
        )
        alert_id = change.alert.id
        alerts.acknowledge(session, organization_id=org_id, alert_id=alert_id, actor=TEST_ACTOR, at=now, note=note)
        alerts.resolve(session, organization_id=org_id, alert_id=alert_id, actor=TEST_ACTOR, at=now, note=note)
    add_device(hub, org_id, doctor_id, token)
    with hub.sessions() as session, session.begin():
        dispatch_events(session, hub.settings, now=now + timedelta(seconds=1))
        rows = session.scalars(select(PushOutbox).where(PushOutbox.alert_id == alert_id)).all()
        messages = [message_for(r, session.get_one(PushDevice, r.device_id), hub.sealer) for r in rows]
    assert len(messages) == 2  # opened + resolved; the acknowledgement sends nothing

    legit = f"{VOCABULARY} {alert_id} {token}".lower()
    needles = [given_name, family_name, mrn, phone, birth_date.isoformat(), note, str(value)]
    if rule_code not in {t.value for t in AlertType}:
        needles.append(rule_code)
    checked = [n for n in needles if n.strip() and n.lower() not in legit]
    for message in messages:
        check_message(message)
        serialized = json.dumps(message, ensure_ascii=False).lower()
        escaped = json.dumps(message).lower()
        for needle in checked:
            assert needle.lower() not in serialized, f"{needle!r} leaked into a push"
            assert json.dumps(needle).strip('"').lower() not in escaped
        assert _all_keys(message) <= ALLOWED_KEYS
        assert set(message["message"]["data"]) == {"alert_id", "alert_type", "severity", "action"}


_ORGS: dict[str, tuple[str, str]] = {}


def _org(hub: Hub) -> tuple[str, str]:
    # One organization per test database (examples share it; each has its own patient).
    key = hub.settings.effective_database_url
    with hub.sessions() as session:
        from vitalbridge.tenancy.models import Organization

        if key in _ORGS and session.get(Organization, _ORGS[key][0]) is not None:
            return _ORGS[key]
    _ORGS[key] = make_org(hub, f"Sanitizer {uuid.uuid4().hex[:8]}")
    return _ORGS[key]


def _doctor(hub: Hub, org_id: str) -> str:
    return make_clinician(hub, org_id, f"dr-{uuid.uuid4().hex[:12]}@sanitizer.example").user_id


@settings(max_examples=200, database=None)
@given(alert_id=st.text(max_size=60), severity=st.sampled_from(list(Severity)))
def test_a_notice_takes_only_a_uuid_and_codes(alert_id: str, severity: Severity) -> None:
    try:
        parsed = uuid.UUID(alert_id)
    except ValueError:
        with pytest.raises(UnsafePushPayload):
            PushNotice.of(alert_id=alert_id, rule_code="spo2_low", severity=severity, action=PushAction.open_alert)
        return
    notice = PushNotice.of(alert_id=alert_id, rule_code="spo2_low", severity=severity, action=PushAction.open_alert)
    assert notice.alert_id == parsed  # whatever the spelling, the push carries the canonical form


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alert_id", "6f1c2b9e-3a57-4a9b-8f33-6c3f2a1d9e10"),  # a string, not a UUID object
        ("alert_type", "bp_systolic_high"),  # a string, not the enum
        ("severity", "critical"),
        ("action", "open_alert"),
    ],
)
def test_plain_strings_cannot_stand_in_for_the_typed_fields(field: str, value: str) -> None:
    fields: dict[str, Any] = {
        "alert_id": uuid.uuid4(),
        "alert_type": AlertType.spo2_low,
        "severity": Severity.high,
        "action": PushAction.open_alert,
    }
    fields[field] = value
    with pytest.raises(UnsafePushPayload):
        PushNotice(**fields)


def test_rule_names_of_a_programs_own_rules_travel_as_other() -> None:
    notice = PushNotice.of(
        alert_id=str(uuid.uuid4()), rule_code="jane_doe_1957_bp", severity=Severity.high, action=PushAction.open_alert
    )
    message = build_message(notice, fcm_token())
    assert message["message"]["data"]["alert_type"] == "other"
    assert "jane" not in json.dumps(message).lower()


def _paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for key, value in node.items():
        here = (*prefix, key)
        out += _paths(value, here) if isinstance(value, dict) else [here]
    return out


VALID = build_message(
    PushNotice(uuid.uuid4(), AlertType.bp_systolic_high, Severity.critical, PushAction.open_alert), fcm_token()
)
LEAVES = [p for p in _paths(VALID) if p != ("message", "token")]
OBJECTS = [p[:-1] for p in _paths(VALID)]


@settings(max_examples=300, database=None)
@given(data=st.data(), text=st.text(max_size=30))
def test_the_allow_list_refuses_any_changed_value_or_extra_key(data: st.DataObject, text: str) -> None:
    message = json.loads(json.dumps(VALID))
    if data.draw(st.booleans(), label="add a key"):
        where = data.draw(st.sampled_from(OBJECTS))
        node = message
        for key in where:
            node = node[key]
        key = data.draw(st.text(min_size=1, max_size=20), label="key")
        assume(key not in node)
        node[key] = text
    else:
        where = data.draw(st.sampled_from(LEAVES))
        node = message
        for key in where[:-1]:
            node = node[key]
        # "PHI " can never start an allowed value (no catalogue text, code, UUID or token does).
        node[where[-1]] = "PHI " + text
    with pytest.raises(UnsafePushPayload):
        check_message(message)


def test_a_valid_message_passes_and_urgency_sets_priorities() -> None:
    alert = uuid.uuid4()
    urgent = build_message(PushNotice(alert, AlertType.spo2_low, Severity.critical, PushAction.open_alert), fcm_token())
    routine = build_message(PushNotice(alert, AlertType.spo2_low, Severity.medium, PushAction.open_alert), fcm_token())
    done = build_message(
        PushNotice(alert, AlertType.spo2_low, Severity.critical, PushAction.alert_resolved), fcm_token()
    )
    assert urgent["message"]["android"]["priority"] == "HIGH"
    assert urgent["message"]["apns"]["headers"]["apns-priority"] == "10"
    assert routine["message"]["android"]["priority"] == "NORMAL"
    assert routine["message"]["apns"]["headers"]["apns-priority"] == "5"
    assert done["message"]["android"]["priority"] == "NORMAL"
    for m in (urgent, routine, done):
        block = m["message"]
        assert block["android"]["collapse_key"] == str(alert)
        assert block["android"]["notification"]["tag"] == str(alert)
        assert block["apns"]["headers"]["apns-collapse-id"] == str(alert)
        assert block["apns"]["payload"]["aps"]["content-available"] == 1
        assert block["apns"]["payload"]["aps"]["mutable-content"] == 1
        assert block["apns"]["payload"]["aps"]["alert"] == block["notification"]


def test_a_token_of_impossible_shape_is_refused() -> None:
    notice = PushNotice(uuid.uuid4(), AlertType.spo2_low, Severity.high, PushAction.open_alert)
    for bad in ("", "short", "has space " + "x" * 30, "x" * 5000):
        with pytest.raises(UnsafePushPayload):
            build_message(notice, bad)
