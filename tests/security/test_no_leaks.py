"""Seed distinctive PHI and secrets, drive the hub (failures and DEBUG logging included), and
find none of them in logs, exception messages, metrics or the audit trail (SPEC §9)."""

from __future__ import annotations

import http.client
from datetime import date

import httpx
import pytest
import structlog
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError

from tests.leaks import LeakHarness
from tests.support import api_client, make_tenant
from vitalbridge.patients.models import Patient
from vitalbridge.servers import ServerThread

GIVEN, FAMILY = "Zebediah", "Quackenbush"
DOB = "1931-07-14"
MRN = "MRN4417PHI"
PHONE = "+1-555-013-7742"
CLIENT_SECRET = "cs-Zq8v-not-for-logs-771"
EHR_ACCESS_TOKEN = "eyJhbGciOiJSUzM4NCJ9.eyJzdWIiOiJ2aXRhbGJyaWRnZSJ9.ZmFrZS1zaWduYXR1cmUtYnl0ZXM"


def test_no_phi_or_secret_leaves_the_hub(leak_harness: LeakHarness) -> None:
    hub = leak_harness.hub
    tenant = make_tenant(hub, "Leak Org")
    practice = {
        "practice_code": "LEAK1",
        "fhir_base_url": "https://fhir.example.org/fhir/r4/LEAK1",
        "token_url": "https://oauth.example.org/token",
        "client_id": "leak-client",
        "auth_method": "client_secret_basic",
        "client_secret": CLIENT_SECRET,
    }
    with api_client(hub) as client:
        created = client.post("/api/v1/practices/", json=practice, headers=tenant.headers)
        assert created.status_code == 201, created.text
        practice_id = created.json()["id"]
        with hub.sessions() as session, session.begin():
            session.add(
                Patient(
                    organization_id=tenant.org_id,
                    practice_id=practice_id,
                    ehr_id="leak-ehr-1",
                    mrn=MRN,
                    given_name=GIVEN,
                    family_name=FAMILY,
                    birth_date=date.fromisoformat(DOB),
                    phone=PHONE,
                )
            )
        # Failures whose bodies and echoes carry PHI: validation errors echo the input.
        bad = client.post(
            "/api/v1/practices/",
            json={**practice, "practice_code": f"{FAMILY} {DOB}", "name": f"{GIVEN} {FAMILY}", "fhir_base_url": MRN},
            headers=tenant.headers,
        )
        assert bad.status_code == 422
        # PHI in a path segment. Sent with http.client, which logs nothing itself: what is
        # searched below is what the hub logged, not the test client's own request line.
        conn = http.client.HTTPConnection(str(client.base_url.host), client.base_url.port)
        conn.request("GET", f"/api/v1/practices/{FAMILY}-{MRN}", headers=tenant.headers)
        assert conn.getresponse().status == 404
        conn.close()
        assert (
            client.post(
                "/api/v1/users/", json={"email": f"{FAMILY}@x", "role": PHONE}, headers=tenant.headers
            ).status_code
            == 422
        )
        # PHI in query strings and an unsafe request id.
        resp = client.get(
            "/api/v1/audit/",
            params={"correlation_id": MRN, "action": f"{GIVEN}", "since": f"{DOB}T00:00:00"},
            headers={**tenant.headers, "X-Request-ID": f"{FAMILY}-{DOB}"},
        )
        assert resp.status_code == 200
        # Refused tokens: a guess, and an EHR token sent to the wrong place.
        assert (
            client.get("/api/v1/practices/", headers={"Authorization": f"Bearer {EHR_ACCESS_TOKEN}"}).status_code == 401
        )
        assert client.get("/api/v1/practices/", headers={"Authorization": f"Basic {CLIENT_SECRET}"}).status_code == 401
        assert client.get("/api/v1/practices/", headers=tenant.headers).status_code == 200

    # An outbound call with PHI in its URL, as a patient search would make (httpx logs the URL).
    peer = FastAPI()

    @peer.get("/fhir/Patient")
    def search() -> dict[str, str]:
        return {"resourceType": "Bundle"}

    with ServerThread(peer) as url:
        httpx.get(f"{url}/fhir/Patient", params={"family": FAMILY, "birthdate": DOB, "identifier": MRN})

    # What other features' code will do: structured events with FHIR-shaped payloads, errors.
    log = structlog.get_logger("vitalbridge.ehr")
    log.debug(
        "ehr.patient_fetched",
        patient={"name": [{"family": FAMILY, "given": [GIVEN]}], "birthDate": DOB, "telecom": [{"value": PHONE}]},
        headers={"Authorization": f"Bearer {EHR_ACCESS_TOKEN}"},
    )
    try:
        raise RuntimeError(f"token endpoint answered 400 for client_secret={CLIENT_SECRET}")
    except RuntimeError:
        log.exception("ehr.token_failed")

    # Database errors carry no parameters (hide_parameters), so no PHI either.
    with pytest.raises(IntegrityError) as db_error, hub.sessions() as session, session.begin():
        session.add(
            Patient(
                organization_id=tenant.org_id,
                practice_id="no-such-practice",
                given_name=GIVEN,
                family_name=FAMILY,
                mrn=MRN,
            )
        )
    leak_harness.note_exception(db_error.value)

    # The pipeline was live: DEBUG exchanges were logged and something was redacted.
    lines = leak_harness.log_lines()
    events = [line.get("event") for line in lines]
    assert events.count("http.exchange") >= 8
    exchanges = {(x["method"], x["route"], x["status"]) for x in lines if x.get("event") == "http.exchange"}
    assert ("POST", "/api/v1/practices/", 201) in exchanges
    assert ("GET", "/api/v1/practices/{practice_id}", 404) in exchanges
    assert "ehr.token_failed" in events
    assert "[REDACTED]" in leak_harness.log_file.read_text()
    leak_harness.assert_no_leak(
        [GIVEN, FAMILY, DOB, "19310714", MRN, PHONE, CLIENT_SECRET, EHR_ACCESS_TOKEN, tenant.token]
    )


def test_the_harness_finds_a_leak(leak_harness: LeakHarness) -> None:
    """The check can fail: a value printed past the redaction layer is reported."""
    print(f"debug: patient {FAMILY}")
    with pytest.raises(AssertionError, match=f"logs: '{FAMILY}'"):
        leak_harness.assert_no_leak([FAMILY])
    leak_harness.note_exception(ValueError(f"bad MRN {MRN}"))
    with pytest.raises(AssertionError, match="exceptions"):
        leak_harness.assert_no_leak([MRN])
