"""Issue 10 item 1, replayed end to end: organization A registers organization B's EHR tenant and
client (B's practice code, FHIR base URL, token endpoint and client id) to read B's patients and
write into B's chart.

Both organizations use the hub over real HTTP; the EHR is the sandbox, which verifies client
assertions against the JWKS URL registered for the client (B's key set). The attack must fail at
registration (409, owner not revealed) and, when the registration is forced into the database
behind the service's back, at the EHR's token endpoint: no token, no import, no delivery.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.sandbox.support import PRACTICE
from tests.smart.conftest import BACKEND_SCOPES, CLIENT_ID, SmartEnv
from tests.support import Tenant, make_tenant
from vitalbridge.audit import Actor
from vitalbridge.db.base import utcnow
from vitalbridge.delivery.deliver import deliver
from vitalbridge.delivery.models import OutboxEntry
from vitalbridge.devices import gateway_service, registry
from vitalbridge.devices.gateways import GatewayKind
from vitalbridge.devices.simulator import make_record, post_webhook
from vitalbridge.patients.models import Patient
from vitalbridge.tenancy.models import Practice
from vitalbridge.tenancy.service import CLIENT_TAKEN, TENANT_TAKEN

ADMIN = Actor("test", "admin")


def _b_registration(env: SmartEnv) -> dict[str, Any]:
    return {
        "practice_code": PRACTICE,
        "fhir_base_url": env.sandbox.base(PRACTICE),
        "token_url": env.sandbox.token_url,
        "client_id": CLIENT_ID,
        "scopes": BACKEND_SCOPES,
    }


def _observations(env: SmartEnv) -> int:
    resp = env.sandbox.http.get("/_sandbox/observations", params={"practice": PRACTICE})
    assert resp.status_code == 200, resp.text
    return len(resp.json()["observations"])


def _b_patient(env: SmartEnv) -> str:
    resp = env.sandbox.http.get("/_sandbox/patients", params={"practice": PRACTICE, "limit": 1})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return str((body["patients"] if isinstance(body, dict) else body)[0]["id"])


def _assert_owner_not_revealed(resp: httpx.Response, victim: SmartEnv) -> None:
    assert resp.status_code == 409, resp.text
    # The service's rule answered (the database constraints are the second line, tested apart).
    assert resp.json()["detail"] in (TENANT_TAKEN, CLIENT_TAKEN)
    assert victim.tenant.org_id not in resp.text
    assert victim.practice.id not in resp.text
    assert "Clinic A" not in resp.text  # the victim organization's name


def test_registration_of_another_organizations_tenant_or_client_is_refused(smart_env: SmartEnv) -> None:
    victim = smart_env  # "Clinic A" owns PRACTICE at the sandbox, with client CLIENT_ID
    attacker = make_tenant(smart_env.hub, "Attacker org")
    b = _b_registration(victim)
    base, token_url = b["fhir_base_url"], b["token_url"]
    host_upper = base.replace("http://127.0.0.1", "HTTP://127.0.0.1")
    attempts = [
        b,  # the exact registration
        {**b, "fhir_base_url": base + "/"},  # trailing slash
        {**b, "fhir_base_url": host_upper.replace("/fhir/r4/", "/FHIR/R4/./")},  # case and dot segment
        {**b, "fhir_base_url": base.replace("/fhir/r4/", "/fhir//r4/"), "client_id": "attacker-own-client"},
        {**b, "practice_code": PRACTICE.lower(), "client_id": "attacker-own-client"},  # code case
        {**b, "practice_code": "ELSEWHERE", "fhir_base_url": base + "X"},  # B's client, another tenant
        {**b, "practice_code": "ELSEWHERE", "fhir_base_url": base + "X", "token_url": token_url + "/"},
        {**b, "practice_code": "ELSEWHERE", "fhir_base_url": base + "X", "client_id": CLIENT_ID.upper()},
    ]
    for body in attempts:
        resp = victim.api.post("/api/v1/practices/", json=body, headers=attacker.headers)
        _assert_owner_not_revealed(resp, victim)
    with victim.hub.sessions() as session:
        owners = set(session.scalars(select(Practice.organization_id)))
    assert owners == {victim.tenant.org_id}
    # The victim's own registration is untouched and still gets tokens.
    ok = victim.api.post("/api/v1/ecw/test/jwt/", json={"practice": PRACTICE}, headers=victim.tenant.headers)
    assert ok.json()["status"] == "success", ok.text


def _force_registration(env: SmartEnv, attacker: Tenant) -> str:
    """What a database-level bypass would leave: A's row with B's tenant and client."""
    b = _b_registration(env)
    with env.hub.sessions() as session, session.begin():
        row = Practice(
            organization_id=attacker.org_id,
            name="forced",
            practice_code=b["practice_code"],
            fhir_base_url=b["fhir_base_url"],
            token_url=b["token_url"],
            client_id=b["client_id"],
            scopes=" ".join(BACKEND_SCOPES),
        )
        session.add(row)
        session.flush()
        return row.id


def test_a_forced_registration_fails_at_the_ehr_token_endpoint(smart_env: SmartEnv) -> None:
    victim = smart_env
    attacker = make_tenant(smart_env.hub, "Attacker org")
    before = _observations(victim)
    # The test can fail: the victim's own practice gets a token from the same sandbox.
    own = victim.api.post("/api/v1/ecw/test/jwt/", json={"practice": PRACTICE}, headers=victim.tenant.headers)
    assert own.json()["status"] == "success", own.text

    forced = _force_registration(victim, attacker)
    api = victim.api

    # 1. No token: A's assertion is signed with A's key, and the EHR checks B's JWKS URL.
    jwt = api.post("/api/v1/ecw/test/jwt/", json={"practice": forced}, headers=attacker.headers).json()
    assert jwt["status"] == "error"
    assert jwt["oauth_error"] == "invalid_client"
    assert jwt.get("practice") == PRACTICE

    # 2. No import of B's patients.
    ehr_patient = _b_patient(victim)
    imported = api.post(
        "/api/v1/ecw/patients/import/",
        json={"practice": forced, "patient_ids": [ehr_patient]},
        headers=attacker.headers,
    )
    assert imported.status_code != 200 or all(p["id"] is None for p in imported.json()["patients"]), imported.text
    with victim.hub.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 0

    # 3. No delivery into B's chart: a reading of A's patient (linked, by force too, to B's EHR
    # patient) goes through the real webhook and delivery path and is refused at the token endpoint.
    with victim.hub.sessions() as session, session.begin():
        patient = Patient(
            organization_id=attacker.org_id,
            practice_id=forced,
            ehr_id=ehr_patient,
            given_name="Forced",
            family_name="Link",
        )
        session.add(patient)
        gateway, secret = gateway_service.create_gateway(
            session, victim.hub.sealer, organization_id=attacker.org_id, kind=GatewayKind.mioconnect, actor=ADMIN
        )
        session.flush()
        registry.assign_device(
            session,
            organization_id=attacker.org_id,
            serial="forced-bp",
            patient_id=patient.id,
            actor=ADMIN,
            now=utcnow(),
        )
        gateway_id = gateway.id
    reading = make_record(
        "forced-1", "forced-bp", "blood_pressure", utcnow(), {"systolic": 120, "diastolic": 80, "unit": "mmHg"}
    )
    with httpx.Client(timeout=30) as client:
        resp = post_webhook(client, victim.hub_url, gateway_id, secret, reading)
    assert resp.status_code in (200, 202), resp.text
    with victim.hub.sessions() as session:
        rows = list(session.scalars(select(OutboxEntry.id).where(OutboxEntry.organization_id == attacker.org_id)))
    assert rows, "the reading must have reached the outbox, or the delivery step proves nothing"
    for row_id in rows:
        assert deliver(victim.hub, row_id, sleep=lambda _s: None).status != "delivered"
    assert _observations(victim) == before
    stats = victim.sandbox.stats()
    assert stats["token_requests_by_client"].get(CLIENT_ID, 0) >= 1


@pytest.mark.parametrize(
    ("fields", "refused"),
    [
        (("practice_code", "fhir_base_url"), True),  # B's EHR tenant
        (("client_id", "token_url"), True),  # B's EHR client
        (("fhir_base_url",), False),  # B's server with A's own practice code: another tenant
        (("token_url",), False),  # B's token endpoint with A's own client id: A's client
    ],
)
def test_editing_into_another_organizations_registration_is_refused(
    smart_env: SmartEnv, fields: tuple[str, ...], refused: bool
) -> None:
    """PATCH cannot do what POST may not: move a practice onto another organization's tenant or client."""
    victim = smart_env
    attacker = make_tenant(smart_env.hub, "Attacker org")
    b = _b_registration(victim)
    own = {
        **b,
        "practice_code": "OWN1",
        "fhir_base_url": b["fhir_base_url"] + "OWN",
        "client_id": "attacker-client",
        "token_url": b["token_url"] + "/attacker",
    }
    created = victim.api.post("/api/v1/practices/", json=own, headers=attacker.headers)
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    resp = victim.api.patch(f"/api/v1/practices/{pid}", json={f: b[f] for f in fields}, headers=attacker.headers)
    if not refused:
        assert resp.status_code == 200, resp.text
        return
    _assert_owner_not_revealed(resp, victim)
    unchanged = victim.api.get(f"/api/v1/practices/{pid}", headers=attacker.headers).json()
    assert {f: unchanged[f] for f in fields} == {f: own[f] for f in fields}
