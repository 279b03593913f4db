"""Per-organization signing key sets (issue 10 item 1): each organization's JWKS URL answers only
its keys, the hub-wide set is for single-tenant hubs, and practices registered before the change
keep working with a warning until they move (the migration path)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import TEST_SECRET_KEY
from tests.sandbox.support import PRACTICE
from tests.smart.conftest import CLIENT_ID, SmartEnv
from tests.smart.test_cli import run
from tests.support import make_tenant
from tests.tenancy.test_practice_edit import long_client_id
from tests.test_cli import cli_env
from vitalbridge.runtime import Hub
from vitalbridge.smart import keys
from vitalbridge.smart.services import jwks_url
from vitalbridge.tenancy.models import Practice


def _kids(env: SmartEnv, path: str) -> list[str]:
    resp = env.api.get(path)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Cache-Control"].startswith("public, max-age=")
    return [k["kid"] for k in resp.json()["keys"]]


def test_each_organization_publishes_only_its_own_keys(smart_env: SmartEnv) -> None:
    a = smart_env.tenant.org_id
    b = make_tenant(smart_env.hub, "Clinic B").org_id
    with smart_env.hub.sessions() as session:
        [a_kid] = [k.kid for k in keys.list_keys(session, organization_id=a)]
    # B's set gets its first key when first asked for, and keeps it.
    b_kids = _kids(smart_env, f"/.well-known/jwks/{b}.json")
    assert len(b_kids) == 1
    assert _kids(smart_env, f"/.well-known/jwks/{b}.json") == b_kids
    assert _kids(smart_env, f"/.well-known/jwks/{a}.json") == [a_kid]
    assert a_kid not in b_kids
    # The hub-wide set holds no organization's key.
    assert _kids(smart_env, "/.well-known/jwks.json") == []
    assert smart_env.api.get("/.well-known/jwks/00000000-0000-0000-0000-000000000000.json").status_code == 404
    assert smart_env.api.get("/.well-known/jwks/no%20such.json").status_code == 422
    # The practice tells its admin which URL to register with the EHR.
    listed = smart_env.api.get("/api/v1/practices/", headers=smart_env.tenant.headers).json()
    assert listed[0]["jwks_url"] == f"{smart_env.hub_url}/.well-known/jwks/{a}.json"
    assert listed[0]["signing_key_set"] == "organization"


def _status(env: SmartEnv) -> dict[str, Any]:
    resp = env.api.get("/api/v1/ecw/auth/status/", params={"practice": PRACTICE}, headers=env.tenant.headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _test_jwt(env: SmartEnv) -> dict[str, Any]:
    body: dict[str, Any] = env.api.post(
        "/api/v1/ecw/test/jwt/", json={"practice": PRACTICE}, headers=env.tenant.headers
    ).json()
    return body


def test_a_practice_from_before_keeps_working_with_a_warning_until_it_moves(
    smart_env: SmartEnv, tmp_path: Path, db_url: str
) -> None:
    hub, org = smart_env.hub, smart_env.tenant.org_id
    # What migration 0010 leaves for an existing hub: the practice signs with the hub-wide key
    # set, whose URL is the one registered with the EHR.
    with hub.sessions() as session, session.begin():
        practice = session.get(Practice, smart_env.practice.id)
        assert practice is not None
        practice.signing_key_set = "hub"  # type: ignore[assignment]
        keys.generate_key(session, hub.sealer)
    smart_env.register_client(jwks_url=jwks_url(hub.settings))
    assert _test_jwt(smart_env)["status"] == "success"
    status = _status(smart_env)
    assert status["signing_key_set"] == "hub"
    assert status["jwks_url"] == f"{smart_env.hub_url}/.well-known/jwks.json"
    [warning] = [w for w in status["warnings"] if "hub-wide key set" in w]
    assert f"/.well-known/jwks/{org}.json" in warning
    assert "vitalbridge practices edit" in warning
    assert "--key-set organization" in warning
    # The CLI shows the same warning.
    env = {**cli_env(db_url, tmp_path), "VB_SECRET_KEY": TEST_SECRET_KEY, "VB_PUBLIC_URL": smart_env.hub_url}
    cli = json.loads(run(["ecw", "status", "--org", "Clinic A", "--practice", PRACTICE], env).stdout)
    assert any("hub-wide key set" in w for w in cli["warnings"])

    # The move: register the organization's URL with the EHR, then switch the practice.
    smart_env.register_client(jwks_url=jwks_url(hub.settings, org))
    moved = smart_env.api.patch(
        f"/api/v1/practices/{smart_env.practice.id}",
        json={"signing_key_set": "organization"},
        headers=smart_env.tenant.headers,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["jwks_url"] == f"{smart_env.hub_url}/.well-known/jwks/{org}.json"
    assert _test_jwt(smart_env)["status"] == "success"
    after = _status(smart_env)
    assert not [w for w in after["warnings"] if "hub-wide key set" in w]
    # Back to the hub-wide set is refused now that the hub serves two organizations.
    make_tenant(hub, "Clinic B")
    back = smart_env.api.patch(
        f"/api/v1/practices/{smart_env.practice.id}", json={"signing_key_set": "hub"}, headers=smart_env.tenant.headers
    )
    assert back.status_code == 409
    assert "hub-wide key set" in back.json()["detail"]


def test_the_hub_wide_key_set_is_for_single_tenant_hubs(smart_env: SmartEnv) -> None:
    body = {
        "practice_code": "SOLO",
        "fhir_base_url": smart_env.sandbox.base("PRAC2"),
        "token_url": smart_env.sandbox.token_url,
        "client_id": "solo-client",
        "signing_key_set": "hub",
    }
    # One organization on the hub: allowed (a single-tenant hub may keep one key set).
    alone = smart_env.api.post("/api/v1/practices/", json=body, headers=smart_env.tenant.headers)
    assert alone.status_code == 201, alone.text
    assert alone.json()["jwks_url"] == f"{smart_env.hub_url}/.well-known/jwks.json"
    other = make_tenant(smart_env.hub, "Clinic B")
    shared = smart_env.api.post(
        "/api/v1/practices/",
        json={**body, "practice_code": "SOLO2", "client_id": "b-client", "fhir_base_url": body["fhir_base_url"] + "B"},
        headers=other.headers,
    )
    assert shared.status_code == 409
    assert "hub-wide key set" in shared.json()["detail"]


def test_keys_cli_manages_one_organizations_set(smart_env: SmartEnv, tmp_path: Path, db_url: str) -> None:
    make_tenant(smart_env.hub, "Clinic B")
    env = {**cli_env(db_url, tmp_path), "VB_SECRET_KEY": TEST_SECRET_KEY}
    first = run(["keys", "generate", "--org", "Clinic B"], env).stdout.strip()
    again = run(["keys", "generate", "--org", "Clinic B"], env, ok=False)
    assert again.returncode == 1
    assert "keys rotate --org" in again.stderr
    second = run(["keys", "rotate", "--now", "--org", "Clinic B"], env).stdout.split("\t")[0]
    listed = {
        k["kid"]: k["state"] for k in json.loads(run(["keys", "list", "--json", "--org", "Clinic B"], env).stdout)
    }
    assert listed == {first: "previous", second: "active"}
    # Another organization's key cannot be retired through this set, nor appears in it.
    a_listed = json.loads(run(["keys", "list", "--json", "--org", "Clinic A"], env).stdout)
    assert first not in {k["kid"] for k in a_listed}
    wrong = run(["keys", "retire", "--org", "Clinic A", "--", first], env, ok=False)
    assert wrong.returncode == 1
    assert run(["keys", "retire", "--org", "Clinic B", "--", first], env).stdout.strip() == f"{first}\tretired"
    assert run(["keys", "list"], env).stdout == ""  # the hub-wide set is untouched


def test_a_long_jwt_client_id_gets_a_token_from_the_ehr(smart_env: SmartEnv) -> None:
    client_id = long_client_id(2500)
    created = smart_env.api.post(
        "/api/v1/practices/",
        json={
            "practice_code": "PRAC2",
            "fhir_base_url": smart_env.sandbox.base("PRAC2"),
            "token_url": smart_env.sandbox.token_url,
            "client_id": client_id,
            "scopes": ["system/Patient.read"],
        },
        headers=smart_env.tenant.headers,
    )
    assert created.status_code == 201, created.text
    smart_env.register_client(client_id, practices=["PRAC2"], scopes=["system/Patient.read"])
    resp = smart_env.api.post("/api/v1/ecw/test/jwt/", json={"practice": "PRAC2"}, headers=smart_env.tenant.headers)
    assert resp.json()["status"] == "success", resp.text
    assert client_id in smart_env.sandbox.stats()["token_requests_by_client"]
    assert client_id != CLIENT_ID


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_first_uses_of_an_organizations_key_set_agree_on_one_key(hub: Hub) -> None:
    """Two processes needing an organization's first key at once (say the EHR fetching the JWKS
    while a token request signs): one key is created, and both use it."""
    org = make_tenant(hub, "Clinic C").org_id
    first = hub.sessions()
    first.begin()
    kid = keys.ensure_signing_key(first, hub.sealer, organization_id=org).kid  # inserted, not committed
    second: list[str] = []

    def other_process() -> None:
        with hub.sessions() as session, session.begin():
            second.append(keys.ensure_signing_key(session, hub.sealer, organization_id=org).kid)

    worker = threading.Thread(target=other_process)
    worker.start()
    # Wait until the second insert is blocked on the one-active index, then let the first commit.
    deadline = time.monotonic() + 60
    with hub.engine.connect() as probe:
        while not probe.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        ).scalar():
            assert time.monotonic() < deadline, "the second transaction never waited for the first"
            assert worker.is_alive()
            time.sleep(0.05)
    first.commit()
    first.close()
    worker.join(timeout=60)
    assert second == [kid]
    with hub.sessions() as session:
        assert [k.kid for k in keys.list_keys(session, organization_id=org)] == [kid]


def test_a_registration_that_clashed_before_the_migration_is_flagged(smart_env: SmartEnv) -> None:
    """Migration 0010 leaves the newer of two clashing registrations without its keys."""
    assert not [w for w in _status(smart_env)["warnings"] if "older practice" in w]
    with smart_env.hub.sessions() as session, session.begin():
        practice = session.get(Practice, smart_env.practice.id)
        assert practice is not None
        practice.client_claim_key = None
    [warning] = [w for w in _status(smart_env)["warnings"] if "older practice" in w]
    assert "vitalbridge practices edit" in warning
    # Re-saving the registration through the service gives it its keys back (no clash left).
    fixed = smart_env.api.patch(
        f"/api/v1/practices/{smart_env.practice.id}", json={"name": "Checked"}, headers=smart_env.tenant.headers
    )
    assert fixed.status_code == 200
    assert not [w for w in _status(smart_env)["warnings"] if "older practice" in w]
