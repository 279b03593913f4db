"""The MioConnect adapter: sample payloads in, readings or located field errors out (bytes in, objects out)."""

from __future__ import annotations

import json
from pathlib import Path

from vitalbridge.devices.gateways import GatewayKind, adapter_for
from vitalbridge.devices.readings import MealContext, ReadingType

SAMPLES = Path(__file__).parent / "samples"
ADAPTER = adapter_for(GatewayKind.mioconnect)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_samples_parse_with_their_offsets_and_flags() -> None:
    bp = ADAPTER.parse_webhook(sample("blood_pressure_with_pulse.json"))
    assert bp.ok
    (reading,) = bp.readings
    assert reading.gateway_reading_id == "mc-rd-000101"
    assert reading.reading_type is ReadingType.blood_pressure
    assert reading.device.serial == "356938035643809"
    assert reading.offset_minutes == -300
    assert sorted(reading.values) == ["diastolic", "pulse", "systolic"]
    assert reading.irregular_heartbeat is False
    glucose = ADAPTER.parse_webhook(sample("glucose_mmol.json")).readings[0]
    assert glucose.meal_context is MealContext.fasting
    assert glucose.values["glucose"].unit == "mmol/L"


def test_errors_point_at_payload_fields() -> None:
    doc = json.loads(sample("blood_pressure_with_pulse.json"))
    del doc["device"]["id"]
    doc["type"] = "thermometer"
    doc["measured_at"] = "2025-03-01T08:15:00"  # naive
    result = ADAPTER.parse_webhook(json.dumps(doc).encode())
    locs = {e.loc: e.type for e in result.errors}
    assert locs == {
        ("body", "device", "id"): "missing",
        ("body", "type"): "enum",
        ("body", "measured_at"): "timezone_aware",
    }


def test_data_errors_are_located_under_data() -> None:
    doc = json.loads(sample("weight_lb.json"))
    doc["data"] = {"weight": "heavy"}
    result = ADAPTER.parse_webhook(json.dumps(doc).encode())
    assert {e.loc for e in result.errors} == {("body", "data", "weight"), ("body", "data", "unit")}


def test_not_json_not_an_object_non_finite_and_unix_times_are_refused() -> None:
    assert ADAPTER.parse_webhook(b"{not json").errors[0].type == "json_invalid"
    assert ADAPTER.parse_webhook(b"\xff\xfe").errors[0].type == "json_invalid"
    assert ADAPTER.parse_webhook(b"[1, 2]").errors[0].type == "model_type"
    doc = json.loads(sample("pulse_oximetry.json"))
    nan = json.dumps({**doc, "data": {"spo2": float("nan")}}).encode()  # json.dumps writes NaN
    # NaN is not a JSON number (RFC 8259 §6): the body is refused as it is decoded.
    assert [(e.loc, e.type) for e in ADAPTER.parse_webhook(nan).errors] == [(("body",), "json_invalid")]
    # A decoded record (the REST sync path) with a non-finite number is refused at its field.
    decoded = ADAPTER.parse_record({**doc, "data": {"spo2": float("inf")}}, ("body",))
    assert decoded.errors[0].loc == ("body", "data", "spo2")
    unix = json.dumps({**doc, "measured_at": 1740000000}).encode()
    assert ADAPTER.parse_webhook(unix).errors[0].loc == ("body", "measured_at")


def test_unknown_fields_are_ignored() -> None:
    doc = json.loads(sample("pulse_oximetry.json"))
    doc["firmware"] = "1.2.3"
    doc["data"]["perfusion_index"] = 3.1
    assert ADAPTER.parse_webhook(json.dumps(doc).encode()).ok


def test_page_parsing() -> None:
    page = ADAPTER.parse_page(b'{"data": [{"a": 1}], "next_cursor": "abc"}')
    assert page.records == [{"a": 1}]
    assert page.next_cursor == "abc"
    assert ADAPTER.parse_page(b'{"data": [], "next_cursor": null}').next_cursor is None
    for bad in (b'{"items": []}', b"[]", b'{"data": [], "next_cursor": 5}'):
        try:
            ADAPTER.parse_page(bad)
        except ValueError:
            continue
        raise AssertionError(f"page {bad!r} was accepted")
