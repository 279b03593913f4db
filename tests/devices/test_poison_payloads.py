"""Poison and mistyped webhook payloads are refused (422) and kept, never a 500 (issue 10 items 5, 7).

A 500 tells a gateway to retry, so a payload that crashes the hub is retried forever. Every
JSON-receiving ingest route (each gateway kind's webhook) gets the class: nesting past the
parser's recursion, numbers too long for ``int()``, out-of-range floats, NaN/Infinity literals,
huge strings, and JSON strings or booleans where the contract says numbers (strict types). Each
must answer 422 naming the field and the rule, without the value, with the raw body in
quarantine — and at DEBUG logging the exchange is logged and the connection kept.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from tests.leaks import LeakHarness
from tests.readings_support import World, bp, count, glucose, make_world, spo2, weight
from tests.support import api_client
from vitalbridge.devices.gateways import GatewayKind
from vitalbridge.devices.models import QuarantinedPayload, QuarantineReason, Reading
from vitalbridge.devices.simulator import encode, signed_headers
from vitalbridge.runtime import Hub

ROUTES = [f"/api/v1/webhooks/{kind.value}/" for kind in GatewayKind]


def _with_data(record: dict[str, Any], field: str, literal: str) -> bytes:
    """``record`` encoded with ``data.<field>`` replaced by raw JSON text (which json.dumps can't write)."""
    marker = "__POISON__"
    record["data"][field] = marker
    return encode(record).replace(json.dumps(marker).encode(), literal.encode())


def _poison(limit: int) -> list[tuple[str, bytes, str]]:
    """(case, body, expected error type) — each body under the webhook size limit."""
    deep = (limit - 400) // 2
    return [
        ("deep arrays, whole body", b"[" * deep + b"]" * deep, "json_too_deep"),
        ("deep arrays in a field", _with_data(bp("p-1"), "systolic", "[" * deep + "]" * deep), "json_too_deep"),
        (
            "deep objects in a field",
            _with_data(bp("p-2"), "systolic", '{"a":' * (deep // 3) + "1" + "}" * (deep // 3)),
            "json_too_deep",
        ),
        (
            "moderately deep (under the recursion limit)",
            _with_data(bp("p-3"), "x", "[" * 200 + "]" * 200),
            "json_too_deep",
        ),
        ("5,000-digit integer", _with_data(bp("p-4"), "systolic", "9" * 5000), "json_number_too_long"),
        ("400-digit float", _with_data(bp("p-5"), "systolic", "1" * 400 + ".5"), "json_number_too_long"),
        ("float out of range", _with_data(bp("p-6"), "systolic", "1e999"), "json_number_out_of_range"),
        ("NaN literal", _with_data(bp("p-7"), "systolic", "NaN"), "json_invalid"),
        ("Infinity literal", _with_data(bp("p-8"), "pulse", "Infinity"), "json_invalid"),
        ("-Infinity literal", _with_data(bp("p-9"), "diastolic", "-Infinity"), "json_invalid"),
        ("NaN in an ignored field", _with_data(bp("p-10"), "extra", "NaN"), "json_invalid"),
    ]


def _huge_strings(limit: int) -> list[tuple[str, bytes, tuple[str, ...]]]:
    big = "Q" * (limit - 600)
    long_id = bp("p-11")
    long_id["reading_id"] = big
    long_unit = bp("p-12", unit=big)
    long_device = bp("p-13", device=big)
    return [
        ("huge reading id", encode(long_id), ("body", "reading_id")),
        ("huge unit", encode(long_unit), ("body", "data", "unit")),
        ("huge device id", encode(long_device), ("body", "device", "id")),
    ]


def _post(client: Any, world: World, route: str, body: bytes) -> Any:
    return client.post(route, content=body, headers=signed_headers(world.gateway_id, world.secret, body))


def _quarantined(hub: Hub) -> list[QuarantinedPayload]:
    with hub.sessions() as session:
        return list(session.scalars(select(QuarantinedPayload).order_by(QuarantinedPayload.received_at)))


@pytest.mark.parametrize("route", ROUTES)
def test_poison_json_is_422_and_quarantined_at_debug_logging(leak_harness: LeakHarness, route: str) -> None:
    hub = leak_harness.hub
    world = make_world(hub)
    limit = hub.settings.webhook_max_body_bytes
    cases = _poison(limit)
    strings = _huge_strings(limit)
    with api_client(hub) as client:
        for case, body, error_type in cases:
            assert len(body) <= limit, case
            resp = _post(client, world, route, body)
            assert resp.status_code == 422, (case, resp.status_code, resp.text[:200])
            problem = resp.json()
            assert [(e["loc"], e["type"]) for e in problem["errors"]] == [(["body"], error_type)], case
        for case, body, loc in strings:
            resp = _post(client, world, route, body)
            assert resp.status_code == 422, (case, resp.status_code)
            assert [tuple(e["loc"]) for e in resp.json()["errors"]] == [loc], case
            assert "QQQQ" not in resp.text, case  # the value is never echoed
        # The hub still answers on the same kind of connection afterwards.
        assert world.post(client, bp("p-ok")).status_code == 202
    items = _quarantined(hub)
    sent = [body for _, body, _ in cases] + [body for _, body, _ in strings]
    assert [q.raw_body for q in items] == sent  # byte for byte
    assert {q.reason for q in items[: len(cases)]} == {QuarantineReason.malformed}
    assert count(hub, Reading) == 1
    # DEBUG logging described every exchange (a RecursionError here used to drop the connection).
    exchanges = [line for line in leak_harness.log_lines() if line.get("event") == "http.exchange"]
    assert sum(1 for x in exchanges if x["route"] == "/api/v1/webhooks/{kind}/" and x["status"] == 422) == len(sent)
    assert not [line for line in leak_harness.log_lines() if line.get("event") == "webhook.store_failed"]


STRICT_CASES: list[tuple[str, dict[str, Any], tuple[str, ...], str]] = [
    ("systolic as a string", bp("s-1", systolic="137"), ("body", "data", "systolic"), "float_type"),  # type: ignore[arg-type]
    ("diastolic as a string", bp("s-2", diastolic="87"), ("body", "data", "diastolic"), "float_type"),  # type: ignore[arg-type]
    ("pulse as a string", bp("s-3", pulse="71"), ("body", "data", "pulse"), "float_type"),  # type: ignore[arg-type]
    ("systolic as a boolean", bp("s-4", systolic=True), ("body", "data", "systolic"), "float_type"),
    ("flag as a string", bp("s-5", irregular_heartbeat="true"), ("body", "data", "irregular_heartbeat"), "bool_type"),
    ("flag as a number", bp("s-6", irregular_heartbeat=1), ("body", "data", "irregular_heartbeat"), "bool_type"),
    ("weight as a string", weight("s-7", "81.5"), ("body", "data", "weight"), "float_type"),  # type: ignore[arg-type]
    ("glucose as a string", glucose("s-8", "99"), ("body", "data", "glucose"), "float_type"),  # type: ignore[arg-type]
    ("spo2 as a string", spo2("s-9", "96"), ("body", "data", "spo2"), "float_type"),  # type: ignore[arg-type]
    ("reading id as a number", {**bp("s-10"), "reading_id": 4417}, ("body", "reading_id"), "string_type"),
    ("device id as a number", bp("s-11", device=356938035643809), ("body", "device", "id"), "string_type"),  # type: ignore[arg-type]
    ("unit as a number", weight("s-12", 80, unit=1), ("body", "data", "unit"), "string_type"),  # type: ignore[arg-type]
    ("meal as a boolean", glucose("s-13", 99, meal=True), ("body", "data", "meal"), "enum"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("route", ROUTES)
def test_numbers_as_strings_and_other_coercions_are_refused(hub: Hub, route: str) -> None:
    world = make_world(hub)
    with api_client(hub) as client:
        for case, record, loc, error_type in STRICT_CASES:
            body = encode(record)
            resp = _post(client, world, route, body)
            assert resp.status_code == 422, (case, resp.text)
            problem = resp.json()
            assert [(tuple(e["loc"]), e["type"]) for e in problem["errors"]] == [(loc, error_type)], case
            # Field and rule named; the value is not repeated.
            assert "input" not in problem["errors"][0]
            for value in ("137", "87", "71", "81.5", "99", "96", "true"):
                assert value not in problem["errors"][0]["msg"]
        # The same readings as JSON numbers and booleans are accepted.
        assert world.post(client, bp("s-ok", systolic=137, irregular_heartbeat=True)).status_code == 202
    items = _quarantined(hub)
    assert [q.raw_body for q in items] == [encode(r) for _, r, _, _ in STRICT_CASES]
    assert {q.reason for q in items} == {QuarantineReason.invalid}
    assert count(hub, Reading) == 1
