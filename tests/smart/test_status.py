"""Status and connection tests (SPEC §3), key import, and resilience when a renewal fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.smart.conftest import SmartEnv
from vitalbridge.ehr.client import EhrClient
from vitalbridge.errors import ConfigurationError, Conflict
from vitalbridge.servers import ServerThread
from vitalbridge.smart import keys
from vitalbridge.smart.services import build_smart
from vitalbridge.tenancy.models import KeySetScope, Practice


def test_connection_test_reports_the_server(smart_env: SmartEnv) -> None:
    resp = smart_env.api.post(
        "/api/v1/ecw/test/connection/", json={"practice": "JAFJCD"}, headers=smart_env.tenant.headers
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "success"
    assert body["fhir_version"] == "4.0.1"
    assert body["fhir_server"]
    assert {"Patient", "Observation"} <= set(body["capabilities"])
    assert isinstance(body["response_time_ms"], int)


def capability_server(resources: list[str], seen: list[dict[str, str]] | None = None) -> Starlette:
    async def metadata(request: Request) -> JSONResponse:
        if seen is not None:
            seen.append(dict(request.headers))
        return JSONResponse(
            {
                "resourceType": "CapabilityStatement",
                "fhirVersion": "4.0.1",
                "software": {"name": "Partial FHIR"},
                "rest": [{"mode": "server", "resource": [{"type": r} for r in resources]}],
            }
        )

    return Starlette(routes=[Route("/fhir/r4/PRAC2/metadata", metadata)])


def test_connection_test_names_the_missing_resource(smart_env: SmartEnv) -> None:
    seen: list[dict[str, str]] = []
    with ServerThread(capability_server(["Patient", "Encounter"], seen)) as url:
        smart_env.add_practice("PRAC2", fhir_base_url=f"{url}/fhir/r4/PRAC2")
        resp = smart_env.api.post(
            "/api/v1/ecw/test/connection/", json={"practice": "PRAC2"}, headers=smart_env.tenant.headers
        )
    assert resp.status_code == 200
    assert resp.json()["status"] == "error"
    assert "does not support Observation" in resp.json()["detail"]
    # What the EHR saw: a bearer token and a FHIR JSON Accept header.
    [headers] = seen
    assert headers["accept"] == "application/fhir+json"
    assert headers["authorization"].startswith("Bearer ")
    assert headers["x-request-id"]


def test_practice_may_be_omitted_only_when_there_is_one(smart_env: SmartEnv) -> None:
    ok = smart_env.api.post("/api/v1/ecw/test/jwt/", headers=smart_env.tenant.headers)
    assert ok.status_code == 200, ok.text
    smart_env.add_practice("PRAC2")
    ambiguous = smart_env.api.post("/api/v1/ecw/test/jwt/", json={}, headers=smart_env.tenant.headers)
    assert ambiguous.status_code == 422
    assert ambiguous.json()["errors"][0]["loc"] == ["query", "practice"]


def test_status_without_a_signing_key(smart_env: SmartEnv) -> None:
    # A practice from before per-organization key sets signs with the hub-wide set, which gets
    # no key unless an operator creates one (an organization's set gets its first on first use).
    with smart_env.hub.sessions() as session, session.begin():
        practice = session.get(Practice, smart_env.practice.id)
        assert practice is not None
        practice.signing_key_set = KeySetScope.hub
    status = smart_env.api.get("/api/v1/ecw/auth/status/", headers=smart_env.tenant.headers).json()["practices"][0]
    assert status["jwt_configured"] is False
    assert "keys generate" in status["jwt_reason"]
    resp = smart_env.api.post("/api/v1/ecw/test/jwt/", json={}, headers=smart_env.tenant.headers)
    assert resp.status_code == 200
    assert resp.json()["status"] == "error"
    assert resp.json()["error"] == "configuration_error"
    assert "keys generate" in resp.json()["detail"]


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_failed_routine_renewal_keeps_the_current_token(smart_env: SmartEnv) -> None:
    clock = Clock()
    smart = build_smart(smart_env.hub, clock=clock)
    try:
        client = EhrClient(smart_env.hub, smart)
        client.get(smart_env.practice, "metadata")
        first = smart.backend.token(smart_env.practice)
        # The token endpoint breaks while the token is in its renewal window.
        smart_env.sandbox.http.put(
            "/_sandbox/faults", json={"error_rate": 1.0, "error_status": 503, "apply_to_token": True}
        )
        smart_env.sandbox.http.put("/_sandbox/faults", json={"practice": "JAFJCD", "error_rate": 0.0})
        clock.now += timedelta(seconds=3600 - 200)
        assert smart.backend.token(smart_env.practice).value == first.value
        status = smart_env.api.get(
            "/api/v1/ecw/auth/status/", params={"practice": "JAFJCD"}, headers=smart_env.tenant.headers
        ).json()
        assert status["jwt_last_error"] == "ehr_auth_unavailable"
        assert status["jwt_configured"] is False
        # Past expiry there is nothing to fall back on: the failure surfaces.
        clock.now += timedelta(seconds=300)
        from vitalbridge.errors import EhrAuthUnavailable

        with pytest.raises(EhrAuthUnavailable):
            smart.backend.token(smart_env.practice)
    finally:
        smart.close()


def test_importing_an_existing_key(smart_env: SmartEnv) -> None:
    hub = smart_env.hub
    pem = RSAKey.generate_key(2048).as_pem(private=True)
    with hub.sessions() as session, session.begin():
        row = keys.import_key(session, hub.sealer, pem, grace_s=3600, organization_id=smart_env.tenant.org_id)
        kid, state = row.kid, row.state
    assert kid == RSAKey.import_key(pem).thumbprint()
    assert state.value == "next"
    with hub.sessions() as session, session.begin(), pytest.raises(Conflict):
        keys.import_key(session, hub.sealer, pem, grace_s=0)
    public: Any = RSAKey.import_key(pem).as_pem(private=False)
    with hub.sessions() as session, session.begin(), pytest.raises(ConfigurationError, match="public key"):
        keys.import_key(session, hub.sealer, public, grace_s=0)
    with hub.sessions() as session, session.begin(), pytest.raises(ConfigurationError, match="PEM"):
        keys.import_key(session, hub.sealer, b"not a key", grace_s=0)


def test_status_warns_about_an_unreachable_jwks_url(smart_env: SmartEnv) -> None:
    def warnings() -> list[str]:
        resp = smart_env.api.get("/api/v1/ecw/auth/status/", headers=smart_env.tenant.headers)
        result: list[str] = resp.json()["practices"][0]["warnings"]
        return result

    assert warnings() == []
    smart_env.hub.settings.public_url = ""
    assert "VB_PUBLIC_URL is not set" in warnings()[0]
    smart_env.hub.settings.public_url = smart_env.hub_url
    with smart_env.hub.sessions() as session, session.begin():
        from vitalbridge.tenancy.models import Practice, PracticeEnvironment

        session.get(Practice, smart_env.practice.id).environment = PracticeEnvironment.production  # type: ignore[union-attr]
    assert "not https" in warnings()[0]
