"""MioConnect-style gateway: webhook payload and REST paging (docs/gateways/mioconnect.md).

Structure is checked with pydantic models (field-level errors come out with their JSON path);
the envelope is read first and ``data`` is then checked against the model of the reading
type, so errors point at ``("body", "data", "systolic")`` rather than at a union branch.
Unknown extra fields are ignored: gateways add fields without notice and must not be refused
for it. Types are strict, as the format documents them: values are JSON numbers (``"120"`` is
refused, not read as 120), flags JSON booleans (not ``"true"`` or ``1``); numbers must be finite;
``measured_at`` must be an ISO 8601 string with an offset. The body is decoded within limits
(``strict_json``): too deep, too long a number, NaN/Infinity are field errors, not crashes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, Strict, StrictBool, ValidationError, field_validator

from vitalbridge.devices.gateways import strict_json
from vitalbridge.devices.gateways.base import GatewayKind, Page, PageRequest, ParseResult
from vitalbridge.devices.readings import (
    DeviceRef,
    GatewayReading,
    Loc,
    MealContext,
    ReadingOrigin,
    ReadingType,
    ReportedValue,
)
from vitalbridge.errors import FieldError

_CONFIG = ConfigDict(extra="ignore", allow_inf_nan=False, str_strip_whitespace=True)
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"
# A JSON number (an integer is a number too); never a string or a boolean coerced into one.
Number = Annotated[float, Strict()]


class _Device(BaseModel):
    model_config = _CONFIG

    id: str = Field(min_length=1, max_length=64, pattern=_ID_PATTERN)
    id_type: Literal["imei", "serial"] = "serial"
    model: str | None = Field(default=None, max_length=100)
    manufacturer: str | None = Field(default=None, max_length=100)


class _Envelope(BaseModel):
    model_config = _CONFIG

    reading_id: str = Field(min_length=1, max_length=128, pattern=_ID_PATTERN)
    device: _Device
    type: ReadingType
    measured_at: AwareDatetime
    data: dict[str, Any]
    # "manual" when a person typed the value in (never counts for billing, SPEC §13).
    origin: ReadingOrigin = ReadingOrigin.device

    @field_validator("measured_at", mode="before")
    @classmethod
    def _iso_text_only(cls, v: object) -> object:
        # pydantic would also take a Unix number; the format promises ISO 8601 with an offset.
        if not isinstance(v, str):
            raise ValueError("measured_at must be an ISO 8601 string with a UTC offset")
        return v


class _BloodPressure(BaseModel):
    model_config = _CONFIG

    systolic: Number
    diastolic: Number
    pulse: Number | None = None
    unit: str = "mmHg"
    irregular_heartbeat: StrictBool | None = None


class _PulseOximetry(BaseModel):
    model_config = _CONFIG

    spo2: Number
    pulse: Number | None = None


class _Weight(BaseModel):
    model_config = _CONFIG

    weight: Number
    unit: str


class _Glucose(BaseModel):
    model_config = _CONFIG

    glucose: Number
    unit: str
    meal: MealContext | None = None


_DATA_MODELS: dict[ReadingType, type[BaseModel]] = {
    ReadingType.blood_pressure: _BloodPressure,
    ReadingType.pulse_oximetry: _PulseOximetry,
    ReadingType.weight: _Weight,
    ReadingType.glucose: _Glucose,
}


def _errors(exc: ValidationError, prefix: Loc) -> list[FieldError]:
    out: list[FieldError] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = tuple(p for p in err["loc"])
        out.append(FieldError((*prefix, *loc), str(err["msg"]), str(err["type"])))
    return out


class MioConnectAdapter:
    kind = GatewayKind.mioconnect

    def parse_webhook(self, body: bytes) -> ParseResult:
        try:
            record = strict_json.loads(body)
        except strict_json.PoisonJson as exc:
            return ParseResult(errors=[FieldError(("body",), str(exc), exc.type)])
        return self.parse_record(record, ("body",))

    def parse_record(self, record: Any, loc: Loc) -> ParseResult:
        if not isinstance(record, dict):
            return ParseResult(errors=[FieldError(loc, "a reading must be a JSON object", "model_type")])
        try:
            env = _Envelope.model_validate(record)
        except ValidationError as exc:
            return ParseResult(errors=_errors(exc, loc))
        data_loc: Loc = (*loc, "data")
        try:
            data = _DATA_MODELS[env.type].model_validate(env.data)
        except ValidationError as exc:
            return ParseResult(errors=_errors(exc, data_loc))

        def val(name: str, unit: str, unit_named: bool) -> ReportedValue:
            return ReportedValue(
                float(getattr(data, name)), unit, (*data_loc, name), (*data_loc, "unit") if unit_named else None
            )

        values: dict[str, ReportedValue] = {}
        irregular: bool | None = None
        meal: MealContext | None = None
        if isinstance(data, _BloodPressure):
            values["systolic"] = val("systolic", data.unit, True)
            values["diastolic"] = val("diastolic", data.unit, True)
            irregular = data.irregular_heartbeat
        elif isinstance(data, _PulseOximetry):
            values["spo2"] = val("spo2", "%", False)
        elif isinstance(data, _Weight):
            values["weight"] = val("weight", data.unit, True)
        elif isinstance(data, _Glucose):
            values["glucose"] = val("glucose", data.unit, True)
            meal = data.meal
        pulse = getattr(data, "pulse", None)
        if pulse is not None:
            values["pulse"] = ReportedValue(float(pulse), "/min", (*data_loc, "pulse"))
        reading = GatewayReading(
            gateway_reading_id=env.reading_id,
            device=DeviceRef(env.device.id, env.device.model, env.device.manufacturer),
            reading_type=env.type,
            measured_at=env.measured_at,
            values=values,
            irregular_heartbeat=irregular,
            meal_context=meal,
            origin=env.origin,
            loc=loc,
        )
        return ParseResult(readings=[reading])

    def page_request(self, since: datetime, until: datetime, cursor: str | None, page_size: int) -> PageRequest:
        params = {"since": since.isoformat(), "until": until.isoformat(), "limit": str(page_size)}
        if cursor:
            params["cursor"] = cursor
        return PageRequest("/v1/readings", params)

    def parse_page(self, body: bytes) -> Page:
        doc = strict_json.loads(body)  # PoisonJson is a ValueError: the page is malformed
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise ValueError("page is not an object with a 'data' list")
        cursor = doc.get("next_cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise ValueError("next_cursor must be a string or null")
        return Page(records=list(doc["data"]), next_cursor=cursor or None)
