"""A MioConnect-style gateway simulator, for demos, tests and benchmarks (SPEC §5).

It plays both sides of the gateway:

* the REST API the hub's batch sync pulls from (``GET /v1/readings?since&until&limit&cursor``,
  bearer API key, opaque cursors), served as an ASGI app (``GatewaySimulator.app``);
* the webhook sender: ``post_webhook`` signs a record exactly as a gateway does and POSTs it.

``synthetic_readings`` makes plausible, reproducible readings (same seed, same readings).
Faults for tests: ``fail_next(n, status)`` answers the next ``n`` API calls with ``status``.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from vitalbridge.devices.signing import GATEWAY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

READING_TYPES = ("blood_pressure", "pulse_oximetry", "weight", "glucose")


def signed_headers(gateway_id: str, secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        GATEWAY_HEADER: gateway_id,
        TIMESTAMP_HEADER: ts,
        SIGNATURE_HEADER: sign(secret, ts, body),
    }


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


def post_webhook(
    client: httpx.Client,
    hub_url: str,
    gateway_id: str,
    secret: str,
    record: dict[str, Any] | bytes,
    *,
    kind: str = "mioconnect",
    timestamp: int | None = None,
) -> httpx.Response:
    body = record if isinstance(record, bytes) else encode(record)
    return client.post(
        f"{hub_url.rstrip('/')}/api/v1/webhooks/{kind}/",
        content=body,
        headers=signed_headers(gateway_id, secret, body, timestamp),
    )


def make_record(
    reading_id: str,
    device_id: str,
    reading_type: str,
    measured_at: datetime,
    data: dict[str, Any],
    *,
    id_type: str = "serial",
    model: str | None = None,
) -> dict[str, Any]:
    device: dict[str, Any] = {"id": device_id, "id_type": id_type}
    if model:
        device["model"] = model
    return {
        "reading_id": reading_id,
        "device": device,
        "type": reading_type,
        "measured_at": measured_at.isoformat(),
        "data": data,
    }


def synthetic_readings(
    devices: Iterable[tuple[str, str]],
    start: datetime,
    *,
    per_device: int = 10,
    interval: timedelta = timedelta(hours=12),
    seed: int = 7,
) -> list[dict[str, Any]]:
    """``devices`` = (device id, reading type). Values wander around plausible home readings."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    local = timezone(timedelta(hours=-5))
    out: list[dict[str, Any]] = []
    for serial, rtype in devices:
        weight = rng.uniform(60, 110)
        for i in range(per_device):
            at = (start + i * interval + timedelta(minutes=rng.randint(0, 59))).astimezone(local)
            if rtype == "blood_pressure":
                sys_ = rng.randint(105, 150)
                data: dict[str, Any] = {
                    "systolic": sys_,
                    "diastolic": rng.randint(60, min(95, sys_ - 20)),
                    "pulse": rng.randint(55, 95),
                    "unit": "mmHg",
                    "irregular_heartbeat": rng.random() < 0.05,
                }
            elif rtype == "pulse_oximetry":
                data = {"spo2": rng.randint(93, 99), "pulse": rng.randint(55, 95)}
            elif rtype == "weight":
                weight += rng.uniform(-0.4, 0.4)
                data = {"weight": round(weight / 0.45359237, 1), "unit": "lb"}
            elif rtype == "glucose":
                data = {"glucose": rng.randint(80, 180), "unit": "mg/dL", "meal": rng.choice(["fasting", "after_meal"])}
            else:
                raise ValueError(f"unknown reading type {rtype!r}")
            out.append(make_record(f"sim-{serial}-{i}", serial, rtype, at, data))
    return out


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    text = base64.urlsafe_b64decode(cursor.encode()).decode()
    if not text.startswith("o:"):
        raise ValueError("bad cursor")
    return int(text[2:])


class GatewaySimulator:
    """An in-memory gateway account: its readings and the API key the hub must present."""

    def __init__(self, api_key: str, records: Iterable[dict[str, Any]] = ()) -> None:
        self.api_key = api_key
        self._records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._faults: list[int] = []
        self.calls = 0
        self.add(records)
        self.app = self._build()

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            self._records.extend(records)
            self._records.sort(key=lambda r: (str(r.get("measured_at")), str(r.get("reading_id"))))

    def fail_next(self, n: int, status: int = 503) -> None:
        with self._lock:
            self._faults.extend([status] * n)

    def _window(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        def when(r: dict[str, Any]) -> datetime | None:
            try:
                return datetime.fromisoformat(str(r.get("measured_at")))
            except ValueError:
                return None

        with self._lock:
            # Records with unreadable times are still served (the hub must quarantine them).
            return [r for r in self._records if (t := when(r)) is None or since <= t < until]

    def _build(self) -> FastAPI:
        app = FastAPI(title="gateway simulator", docs_url=None, redoc_url=None, openapi_url=None)

        @app.get("/v1/readings")
        def readings(
            request: Request,
            since: datetime,
            until: datetime,
            limit: int = Query(default=100, ge=1, le=1000),
            cursor: str | None = None,
        ) -> JSONResponse:
            self.calls += 1
            with self._lock:
                fault = self._faults.pop(0) if self._faults else None
            if fault is not None:
                return JSONResponse({"error": "simulated fault"}, status_code=fault)
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            if since.tzinfo is None or until.tzinfo is None:
                return JSONResponse({"error": "since/until need an offset"}, status_code=400)
            try:
                start = _offset(cursor)
            except ValueError:
                return JSONResponse({"error": "bad cursor"}, status_code=400)
            window = self._window(since, until)
            page = window[start : start + limit]
            nxt = _cursor(start + limit) if start + limit < len(window) else None
            return JSONResponse({"data": page, "next_cursor": nxt})

        return app
