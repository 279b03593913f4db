"""The EHR client against the sandbox: every failure the EHR can send becomes the right error
class (transient or permanent), 429 slows the practice, and the audit trail gets every call
without PHI (SPEC §7, §9)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from sqlalchemy import select, text

from tests.sandbox.support import bp_panel, vital
from tests.smart.conftest import SmartEnv
from vitalbridge.audit.models import AuditEntry
from vitalbridge.ehr.calls import Interaction, describe
from vitalbridge.ehr.ratelimit import practice_key
from vitalbridge.errors import (
    ConfigurationError,
    EhrForbidden,
    EhrInvalid,
    EhrNotFound,
    EhrRateLimited,
    EhrUnavailable,
    RateLimited,
)


def calls(env: SmartEnv) -> list[AuditEntry]:
    with env.hub.sessions() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == "ehr.call").order_by(AuditEntry.seq)))


def faults(env: SmartEnv, **plan: Any) -> None:
    resp = env.sandbox.http.put("/_sandbox/faults", json={"practice": "JAFJCD", **plan})
    assert resp.status_code in (200, 201), resp.text


def patient_id(env: SmartEnv) -> str:
    bundle = env.client().get(env.practice, "Patient", params={"_count": 1}).body
    return str(bundle["entry"][0]["resource"]["id"])


def test_create_returns_the_new_id_and_audits_it(smart_env: SmartEnv) -> None:
    pid = patient_id(smart_env)
    resp = smart_env.client().post(smart_env.practice, "Observation", json=bp_panel(pid), correlation_id="corr-1")
    assert resp.status_code == 201
    created = resp.created_id()
    assert created
    assert smart_env.sandbox.stored()[0]["id"] == created
    entry = calls(smart_env)[-1]
    assert entry.resource_type == "Observation"
    assert entry.resource_ids == [created]
    assert entry.correlation_id == "corr-1"
    assert entry.detail == {"method": "POST", "interaction": "create", "attempt": 1}
    assert entry.outcome == "success"
    assert entry.latency_ms is not None


def test_search_params_are_audited_by_name_only(smart_env: SmartEnv) -> None:
    resp = smart_env.client().get(
        smart_env.practice, "Patient", params={"family": "Zyxwvutsrq", "birthdate": "1961-07-13"}
    )
    assert resp.status_code == 200
    entry = calls(smart_env)[-1]
    assert entry.detail["params"] == ["birthdate", "family"]
    assert entry.detail["interaction"] == "search"
    with smart_env.hub.engine.connect() as conn:
        dump = " ".join(str(r) for r in conn.execute(text("SELECT * FROM audit_entries")))
    assert "Zyxwvutsrq" not in dump
    assert "1961-07-13" not in dump


def test_5xx_is_transient_with_the_outcome_text(smart_env: SmartEnv) -> None:
    faults(smart_env, error_rate=1.0, error_status=503)
    with pytest.raises(EhrUnavailable) as failed:
        smart_env.client().get(smart_env.practice, "metadata")
    assert failed.value.transient
    assert failed.value.status_code == 503
    assert calls(smart_env)[-1].detail["error"] == "ehr_unavailable"
    assert calls(smart_env)[-1].outcome == "failure"


def test_timeout_and_reset_are_transient(smart_env: SmartEnv) -> None:
    faults(smart_env, timeout_rate=1.0, timeout_s=5)
    with pytest.raises(EhrUnavailable, match="timed out") as failed:
        smart_env.client().get(smart_env.practice, "metadata", timeout=0.5)
    assert failed.value.transient
    faults(smart_env, reset_rate=1.0)
    with pytest.raises(EhrUnavailable, match="failed"):
        smart_env.client().get(smart_env.practice, "metadata")


def test_connection_refused_is_transient(smart_env: SmartEnv) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    smart_env.client().get(smart_env.practice, "metadata")  # token cached
    conn = smart_env.add_practice("PRAC2", fhir_base_url=f"http://127.0.0.1:{port}/fhir/r4/PRAC2")
    smart_env.register_client(practices=["JAFJCD", "PRAC2"])
    with pytest.raises(EhrUnavailable) as failed:
        smart_env.client().get(conn, "metadata")
    assert failed.value.transient


def test_429_raises_rate_limited_and_holds_the_practice(smart_env: SmartEnv) -> None:
    faults(smart_env, rate_429=1.0, retry_after_s=7)
    with pytest.raises(EhrRateLimited) as limited:
        smart_env.client().get(smart_env.practice, "metadata")
    assert limited.value.retry_after == pytest.approx(7.0)
    assert limited.value.transient
    with smart_env.hub.sessions() as session:
        row = session.execute(
            text("SELECT blocked_until, slow_factor FROM ehr_rate_buckets WHERE key = :k"),
            {"k": practice_key(smart_env.practice.id)},
        ).one()
    assert row[1] == pytest.approx(0.5)
    # The next call would wait past the limiter's patience: refused locally, the EHR is spared.
    smart_env.smart.limiter.max_wait_s = 0.0
    before = smart_env.sandbox.stats()["fhir_requests_by_practice"].get("JAFJCD", 0)
    with pytest.raises(RateLimited):
        smart_env.client().get(smart_env.practice, "metadata")
    assert smart_env.sandbox.stats()["fhir_requests_by_practice"].get("JAFJCD", 0) == before


def test_404_is_permanent_not_found(smart_env: SmartEnv) -> None:
    with pytest.raises(EhrNotFound) as missing:
        smart_env.client().get(smart_env.practice, "Patient/does-not-exist")
    assert not missing.value.transient
    assert missing.value.status_code == 404
    assert missing.value.diagnostics
    assert calls(smart_env)[-1].resource_ids == ["does-not-exist"]


def test_422_carries_the_operation_outcome_and_keeps_it_out_of_str(smart_env: SmartEnv) -> None:
    pid = patient_id(smart_env)
    bad = vital(pid, unit="beats")  # not UCUM
    with pytest.raises(EhrInvalid) as invalid:
        smart_env.client().post(smart_env.practice, "Observation", json=bad)
    exc = invalid.value
    assert not exc.transient
    assert exc.status_code == 422
    assert exc.diagnostics
    assert "error" in exc.diagnostics
    assert exc.diagnostics not in str(exc)
    assert exc.as_problem()["diagnostics"] == exc.diagnostics


def test_403_missing_scope_is_permanent_forbidden(smart_env: SmartEnv) -> None:
    conn = smart_env.add_practice("PRAC2", scopes=["system/Patient.read"], client_id="read-only")
    smart_env.register_client("read-only", practices=["PRAC2"], scopes=["system/Patient.read"])
    bundle = smart_env.client().get(conn, "Patient", params={"_count": 1}).body
    pid = bundle["entry"][0]["resource"]["id"]
    with pytest.raises(EhrForbidden) as forbidden:
        smart_env.client().post(conn, "Observation", json=vital(pid))
    assert not forbidden.value.transient
    assert "system/Patient.read" in str(forbidden.value)
    assert "Observation" in (forbidden.value.diagnostics or "")


def test_paging_links_on_the_same_server_work_and_others_are_refused(smart_env: SmartEnv) -> None:
    first = smart_env.client().get(smart_env.practice, "Patient", params={"_count": 2}).body
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    page = smart_env.client().get(smart_env.practice, next_url)
    assert page.status_code == 200
    assert calls(smart_env)[-1].detail["interaction"] == "search"
    assert "_count" in calls(smart_env)[-1].detail["params"]
    with pytest.raises(ConfigurationError, match="refusing"):
        smart_env.client().get(smart_env.practice, "https://elsewhere.example.org/fhir/r4/JAFJCD/Patient")


def test_stream_reads_a_large_response_lazily(smart_env: SmartEnv) -> None:
    with smart_env.client().stream(smart_env.practice, "Patient", params={"_count": 5}) as resp:
        assert resp.status_code == 200
        body = b"".join(resp.iter_bytes())
    assert b'"Bundle"' in body
    with pytest.raises(EhrNotFound), smart_env.client().stream(smart_env.practice, "Patient/nope"):
        pass


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "metadata", ("CapabilityStatement", (), Interaction.capabilities)),
        ("GET", "Patient/123", ("Patient", ("123",), Interaction.read)),
        ("GET", "Patient/123/_history/2", ("Patient", ("123",), Interaction.vread)),
        ("GET", "Patient?name=x", ("Patient", (), Interaction.search)),
        ("POST", "Observation/_search", ("Observation", (), Interaction.search)),
        ("POST", "Observation", ("Observation", (), Interaction.create)),
        ("PUT", "Observation/9", ("Observation", ("9",), Interaction.update)),
        ("GET", "Patient/$export", ("Patient", (), Interaction.operation)),
    ],
)
def test_describe(method: str, path: str, expected: tuple[Any, ...]) -> None:
    assert describe(method, path) == expected


def test_429_from_the_token_endpoint_holds_the_practice(smart_env: SmartEnv) -> None:
    faults(smart_env, rate_429=1.0, retry_after_s=9, apply_to_token=True)
    with pytest.raises(EhrRateLimited) as limited:
        smart_env.client().get(smart_env.practice, "metadata")
    assert limited.value.retry_after == pytest.approx(9.0)
    wait = smart_env.smart.limiter.try_acquire(smart_env.practice)
    assert 8.0 < wait <= 9.0
