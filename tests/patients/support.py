"""Helpers for the patients tests: sample patients straight from the sandbox, registry reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from tests.sandbox.support import PRACTICE
from tests.smart.conftest import SmartEnv
from vitalbridge.patients.models import Patient


def sandbox_patients(env: SmartEnv, limit: int = 10, practice: str = PRACTICE) -> list[dict[str, Any]]:
    """A few synthetic patients as the sandbox describes them (id, given, family, birthDate, mrn)."""
    resp = env.sandbox.http.get("/_sandbox/patients", params={"practice": practice, "limit": limit})
    assert resp.status_code == 200, resp.text
    patients = resp.json()["patients"]
    assert isinstance(patients, list)
    return patients


def patient_count(env: SmartEnv) -> int:
    with env.hub.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Patient)) or 0)


def stats(env: SmartEnv) -> dict[str, Any]:
    resp = env.sandbox.http.get("/_sandbox/stats")
    assert resp.status_code == 200
    body = resp.json()
    assert isinstance(body, dict)
    return body
