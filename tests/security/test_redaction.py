"""The redaction processor against adversarial log content, and the real logging pipeline."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import structlog

from vitalbridge.observability.logging import configure_logging
from vitalbridge.observability.redaction import REDACTED, redact, redact_text
from vitalbridge.settings import Settings

JWT = "eyJhbGciOiJSUzM4NCIsImtpZCI6ImFiYyJ9.eyJzdWIiOiJjbGllbnQiLCJleHAiOjF9.c2lnbmF0dXJlLWJ5dGVz"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"


def test_sensitive_keys_are_masked_at_any_depth() -> None:
    event = {
        "Authorization": "Bearer abc.def",
        "client-secret": "s3",
        "refresh_token": "rt",
        "gateway_hmac_secret": "h",
        "codeVerifier": "ok-not-a-listed-key",
        "code_verifier": "v",
        "patient": {
            "name": [{"family": "Quackenbush", "given": ["Zeb"]}],
            "birthDate": "1931-07-14",
            "telecom": [{"system": "phone", "value": "555-0137"}],
            "identifier": [{"system": "mrn", "value": "MRN-1"}],
            "id": "pat-1",
        },
        "observation": {"valueQuantity": {"value": 182}, "code": "8480-6", "note": [{"text": "dizzy"}]},
        "errors": [{"loc": ["body", "x"], "input": "Quackenbush"}],
        "status": 201,
    }
    out = redact(event)
    text = json.dumps(out)
    for secret in ("abc.def", "s3", '"rt"', '"h"', '"v"', "Quackenbush", "Zeb", "1931", "555-0137", "MRN-1", "182"):
        assert secret not in text, secret
    assert out["patient"]["id"] == "pat-1"
    assert out["observation"]["code"] == "8480-6"
    assert out["status"] == 201


def test_shapes_are_cut_out_of_free_text() -> None:
    cases = {
        f"Authorization: Bearer {JWT}": JWT,
        f"assertion={JWT}&x=1": JWT,
        f"bare jwt {JWT} in text": JWT,
        f"key material {PEM} follows": "MIIEvQIBADANBg",
        "token vb_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789 used": "vb_AbCdEfGhIjKlMnOpQrSt",
        "GET https://ehr/fhir/Patient?name=Quackenbush&birthdate=1931-07-14": "Quackenbush",
        "callback?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj": "SplxlOBeZQQYbYS6WxSbIA",
        "https://admin:hunter2@ehr.example/fhir": "hunter2",
        "Basic Y2xpZW50OnNlY3JldA==": "Y2xpZW50OnNlY3JldA",
        "MSH|^~\\&|EHR|FAC\rPID|1||MRN-77^^^FAC||Quackenbush^Zeb||19310714|M\rPV1|1|O": "Quackenbush",
    }
    for text, secret in cases.items():
        out = redact_text(text)
        assert secret not in out, (text, out)
        assert REDACTED in out
    # Query parameter names and plain text survive: logs stay useful.
    assert redact_text("GET /api/v1/audit/?action=x") == f"GET /api/v1/audit/?action={REDACTED}"
    assert redact_text("delivered Observation obs-1 in 12 ms") == "delivered Observation obs-1 in 12 ms"


def test_stdlib_and_structlog_records_share_the_pipeline(tmp_path: Path) -> None:
    stream = io.StringIO()
    log_file = tmp_path / "hub.log"
    configure_logging(Settings(data_dir=tmp_path, log_file=log_file, ecw_log_level="DEBUG"), stream=stream)
    logging.getLogger("httpx").info('HTTP Request: GET https://ehr/Patient?family=Quackenbush "HTTP/1.1 200 OK"')
    logging.getLogger("uvicorn.error").error("token refused: Bearer %s", JWT)
    try:
        raise RuntimeError(f"upstream said: Authorization: Bearer {JWT}")
    except RuntimeError:
        structlog.get_logger("vitalbridge.test").exception("ehr.failed", client_secret="cs-1", patient_name="Zeb Q")
    # SQL parameters stay out even when the operator asks for DEBUG.
    assert logging.getLogger("sqlalchemy.engine").getEffectiveLevel() >= logging.WARNING
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["logger"] for line in lines] == ["httpx", "uvicorn.error", "vitalbridge.test"]
    assert lines[2]["client_secret"] == REDACTED
    assert lines[2]["patient_name"] == REDACTED
    assert "RuntimeError" in lines[2]["exception"]
    blob = stream.getvalue()
    for leaked in ("Quackenbush", JWT, "cs-1", "Zeb Q"):
        assert leaked not in blob

    # The file gets the same records (each handler stamps its own time on stdlib records).
    def untimed(text: str) -> list[dict[str, object]]:
        return [{k: v for k, v in json.loads(x).items() if k != "timestamp"} for x in text.splitlines()]

    assert untimed(log_file.read_text()) == untimed(stream.getvalue())


def test_log_file_rotates(tmp_path: Path) -> None:
    log_file = tmp_path / "hub.log"
    configure_logging(
        Settings(data_dir=tmp_path, log_file=log_file, log_max_bytes=2048, log_backups=2), stream=io.StringIO()
    )
    log = structlog.get_logger("vitalbridge.test")
    for i in range(200):
        log.info("filler", i=i, pad="x" * 40)
    assert sorted(p.name for p in tmp_path.glob("hub.log*")) == ["hub.log", "hub.log.1", "hub.log.2"]
    assert log_file.stat().st_size <= 2048 + 512
