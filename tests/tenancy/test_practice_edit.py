"""Editing practices (issue 12 item 2), long client ids (issue 12 item 1), the hub-wide sending
facility rule (issue 10 item 2) and per-organization user emails (issue 10 item 11): API and CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from sqlalchemy import select

from tests.conftest import TEST_SECRET_KEY
from tests.smart.test_cli import run
from tests.support import Tenant, api_client, make_tenant, token_for
from tests.test_cli import cli_env
from vitalbridge.audit.models import AuditEntry
from vitalbridge.runtime import Hub
from vitalbridge.smart.models import EhrToken, GrantKind
from vitalbridge.tenancy import service
from vitalbridge.tenancy.models import Practice, Role, User

PRACTICE: dict[str, Any] = {
    "practice_code": "JAFJCD",
    "name": "Main Street Family Medicine",
    "fhir_base_url": "https://fhir.example.org/fhir/r4/JAFJCD",
    "token_url": "https://oauth.example.org/oauth/oauth2/token",
    "client_id": "client-123",
}
SECRET = "s3cr3t-value-for-edit-test"


def long_client_id(length: int = 3000) -> str:
    """A client id as some EHRs issue it: a signed JWT (software statement style) of ``length`` chars."""
    claims = {
        "iss": "https://ehr.example.org",
        "sub": "vitalbridge",
        "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        "scope": "system/Patient.read system/Observation.write",
        "jwks_uri": "https://rpm.example.org/.well-known/jwks/0b6f.json",
        "iat": 1767225600,
    }
    token = jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, OctKey.import_key(b"k" * 32))
    # Pad the claims to the wanted length; the JWT stays three base64url parts.
    pad = length - len(token)
    claims["ext"] = "x" * max(0, (pad * 3) // 4 - 12)
    token = jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, OctKey.import_key(b"k" * 32))
    assert token.count(".") == 2
    return token


def _cli_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    # The hub fixture's key-encryption key, so secrets the CLI seals open in the test's hub.
    return {**cli_env(db_url, tmp_path), "VB_SECRET_KEY": TEST_SECRET_KEY}


def _create(client: httpx.Client, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    resp = client.post("/api/v1/practices/", json={**PRACTICE, **overrides}, headers=tenant.headers)
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_edit_changes_only_given_fields_audits_names_and_keeps_secret_write_only(hub: Hub) -> None:
    a = make_tenant(hub, "Org A")
    with api_client(hub) as client:
        created = _create(client, a)
        pid = created["id"]
        # A cached token of the old registration, which an edit must drop.
        with hub.sessions() as session, session.begin():
            session.add(EhrToken(practice_id=pid, kind=GrantKind.backend, scope_key="k" * 64, requested_scopes="s"))
        resp = client.patch(
            f"/api/v1/practices/{pid}",
            json={
                "scopes": ["system/Patient.read", "system/Observation.write", "system/Observation.read"],
                "token_url": "https://oauth.example.org/oauth2/v2/token",
                "auth_method": "client_secret_basic",
                "client_secret": SECRET,
                "authorize_url": "https://oauth.example.org/authorize",
            },
            headers=a.headers,
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert SECRET not in resp.text
        assert body["client_secret_configured"] is True
        assert body["scopes"][-1] == "system/Observation.read"
        assert body["token_url"] == "https://oauth.example.org/oauth2/v2/token"
        assert body["name"] == created["name"]  # not sent, not changed
        assert body["client_id"] == created["client_id"]
        # null clears an optional field; a required one cannot be cleared.
        cleared = client.patch(f"/api/v1/practices/{pid}", json={"authorize_url": None}, headers=a.headers)
        assert cleared.json()["authorize_url"] is None
        refused = client.patch(f"/api/v1/practices/{pid}", json={"client_id": None}, headers=a.headers)
        assert refused.status_code == 422
        unknown = client.patch(f"/api/v1/practices/{pid}", json={"client_secret_sealed": "x"}, headers=a.headers)
        assert unknown.status_code == 422
        # Taking the secret away from a client_secret_basic practice is refused.
        no_secret = client.patch(f"/api/v1/practices/{pid}", json={"client_secret": None}, headers=a.headers)
        assert no_secret.status_code == 422
        assert no_secret.json()["errors"][0]["loc"] == ["body", "client_secret"]
        listed = client.get("/api/v1/practices/", headers=a.headers).text
        assert SECRET not in listed
    with hub.sessions() as session:
        row = session.get(Practice, pid)
        assert row is not None
        assert service.practice_client_secret(row, hub.sealer) == SECRET
        assert session.scalars(select(EhrToken).where(EhrToken.practice_id == pid)).all() == []
        entries = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "practice.updated")))
    assert [e.outcome for e in entries] == ["success", "success"]
    first = entries[0]
    assert first.detail == {"fields": ["auth_method", "authorize_url", "client_secret", "scopes", "token_url"]}
    assert SECRET not in json.dumps(first.detail)
    assert "oauth2/v2" not in json.dumps(first.detail)  # names, not values


def test_edit_of_another_organizations_practice_is_absent(hub: Hub) -> None:
    a = make_tenant(hub, "Org A")
    b = make_tenant(hub, "Org B")
    with api_client(hub) as client:
        pid = _create(client, a)["id"]
        for ref in (pid, "JAFJCD"):
            resp = client.patch(f"/api/v1/practices/{ref}", json={"name": "mine now"}, headers=b.headers)
            assert resp.status_code == 404
            assert pid not in resp.text
        clinician = token_for(hub, a.org_id, Role.clinician)
        forbidden = client.patch(
            f"/api/v1/practices/{pid}", json={"name": "x"}, headers={"Authorization": f"Bearer {clinician}"}
        )
        assert forbidden.status_code == 403
        assert client.get(f"/api/v1/practices/{pid}", headers=a.headers).json()["name"] == PRACTICE["name"]


def test_edit_keeps_the_code_unique_in_the_organization_and_checks_urls(hub: Hub) -> None:
    a = make_tenant(hub, "Org A")
    with api_client(hub) as client:
        first = _create(client, a)
        second = _create(client, a, practice_code="SECOND", fhir_base_url="https://fhir.example.org/fhir/r4/SECOND")
        clash = client.patch(f"/api/v1/practices/{second['id']}", json={"practice_code": "JAFJCD"}, headers=a.headers)
        assert clash.status_code == 409
        # Two practices of one organization may share its EHR client (one app, several practices).
        assert second["client_id"] == first["client_id"]
        hub.settings.allow_private_urls = False  # the SSRF guard as in production
        ssrf = client.patch(
            f"/api/v1/practices/{first['id']}", json={"fhir_base_url": "http://169.254.169.254/fhir"}, headers=a.headers
        )
        assert ssrf.status_code in (400, 422), ssrf.text
        assert "169.254" not in ssrf.json().get("detail", "") or ssrf.status_code == 422


def test_sending_facility_is_unique_hub_wide_on_create_and_edit(hub: Hub) -> None:
    a = make_tenant(hub, "Org A")
    b = make_tenant(hub, "Org B")
    with api_client(hub) as client:
        owned = _create(client, a, hl7_sending_facility="EASTCLINIC")
        b_practice = dict(PRACTICE, fhir_base_url="https://fhir.b.example.org/fhir/r4/JAFJCD", client_id="client-b")
        taken = client.post(
            "/api/v1/practices/", json={**b_practice, "hl7_sending_facility": " EASTCLINIC "}, headers=b.headers
        )
        assert taken.status_code == 409
        assert "Org A" not in taken.text
        assert a.org_id not in taken.text
        assert owned["id"] not in taken.text
        created = client.post("/api/v1/practices/", json=b_practice, headers=b.headers)
        assert created.status_code == 201
        edit = client.patch(
            f"/api/v1/practices/{created.json()['id']}", json={"hl7_sending_facility": "EASTCLINIC"}, headers=b.headers
        )
        assert edit.status_code == 409
        assert edit.json()["detail"] == service.FACILITY_TAKEN
        # The owner can still clear and re-map its own facility.
        own = client.patch(
            f"/api/v1/practices/{owned['id']}", json={"hl7_sending_facility": "EASTCLINIC"}, headers=a.headers
        )
        assert own.status_code == 200
    with hub.sessions() as session:
        mapped = {
            p.organization_id
            for p in session.scalars(select(Practice).where(Practice.hl7_sending_facility.is_not(None)))
        }
    assert mapped == {a.org_id}


def test_hl7_configure_cli_cannot_map_another_organizations_facility(hub: Hub, db_url: str, tmp_path: Path) -> None:
    a = make_tenant(hub, "Org A")
    make_tenant(hub, "Org B")
    with api_client(hub) as client:
        _create(client, a, hl7_sending_facility="EASTCLINIC")
    env = _cli_env(db_url, tmp_path)
    run(
        [
            "practices",
            "add",
            "--org",
            "Org B",
            "--code",
            "P2",
            "--fhir-base-url",
            "https://fhir.b.example.org/fhir/r4/P2",
            "--token-url",
            "https://oauth.example.org/token",
            "--client-id",
            "client-b",
        ],
        env,
    )
    refused = run(
        ["hl7", "configure", "--org", "Org B", "--practice", "P2", "--sending-facility", "EASTCLINIC"], env, ok=False
    )
    assert refused.returncode == 1
    assert "already mapped" in refused.stderr
    assert "Org A" not in refused.stderr


def test_long_jwt_client_id_through_api_and_cli(hub: Hub, db_url: str, tmp_path: Path) -> None:
    a = make_tenant(hub, "Org A")
    client_id = long_client_id(3000)
    assert len(client_id) >= 2900
    with api_client(hub) as client:
        created = _create(client, a, client_id=client_id)
        assert client.get(f"/api/v1/practices/{created['id']}", headers=a.headers).json()["client_id"] == client_id
        # The same long id edited in (one character changed) is stored whole as well.
        other = client_id[:-1] + ("A" if client_id[-1] != "A" else "B")
        edited = client.patch(f"/api/v1/practices/{created['id']}", json={"client_id": other}, headers=a.headers)
        assert edited.status_code == 200, edited.text
        assert edited.json()["client_id"] == other
        too_long = client.post(
            "/api/v1/practices/",
            json={**PRACTICE, "practice_code": "TOOLONG", "client_id": "x" * 4097},
            headers=a.headers,
        )
        assert too_long.status_code == 422
        assert [e["loc"] for e in too_long.json()["detail"]] == [["body", "client_id"]]
    env = _cli_env(db_url, tmp_path)
    cli_id = long_client_id(4096)
    pid = run(
        [
            "practices",
            "add",
            "--org",
            "Org A",
            "--code",
            "CLI1",
            "--fhir-base-url",
            "https://fhir.example.org/fhir/r4/CLI1",
            "--token-url",
            "https://oauth.example.org/cli/token",
            "--client-id",
            cli_id,
        ],
        env,
    ).stdout.strip()
    listed = {p["id"]: p for p in json.loads(run(["practices", "list", "--org", "Org A", "--json"], env).stdout)}
    assert listed[pid]["client_id"] == cli_id
    edited = json.loads(run(["practices", "edit", "CLI1", "--org", "Org A", "--client-id", client_id], env).stdout)
    assert edited["client_id"] == client_id


def test_practices_edit_cli(hub: Hub, db_url: str, tmp_path: Path) -> None:
    a = make_tenant(hub, "Org A")
    b = make_tenant(hub, "Org B")
    with api_client(hub) as client:
        pid = _create(client, a)["id"]
    env = _cli_env(db_url, tmp_path)
    nothing = run(["practices", "edit", "JAFJCD", "--org", "Org A"], env, ok=False)
    assert nothing.returncode == 2
    runner_input = SECRET + "\n"
    from typer.testing import CliRunner

    from vitalbridge.cli import app

    result = CliRunner().invoke(
        app,
        [
            "practices",
            "edit",
            "JAFJCD",
            "--org",
            "Org A",
            "--auth-method",
            "client_secret_basic",
            "--client-secret-stdin",
            "--scopes",
            "system/Patient.read system/Observation.write",
            "--authorize-url",
            "",
        ],
        env={k: v for k, v in env.items() if k.startswith("VB_")},
        input=runner_input,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["auth_method"] == "client_secret_basic"
    assert out["client_secret_configured"] is True
    assert SECRET not in result.output
    assert out["authorize_url"] is None
    # Another organization's practice is not found, by code or id.
    for ref in ("JAFJCD", pid):
        other = run(["practices", "edit", ref, "--org", "Org B", "--name", "x"], env, ok=False)
        assert other.returncode == 1
        assert "no such practice" in other.stderr
    bad = run(["practices", "edit", "JAFJCD", "--org", "Org A", "--token-url", "not a url"], env, ok=False)
    assert bad.returncode == 2
    assert "token_url" in bad.stderr
    assert "not a url" not in bad.stderr
    with hub.sessions() as session:
        row = session.get(Practice, pid)
        assert row is not None
        assert service.practice_client_secret(row, hub.sealer) == SECRET
        actions = [e.action for e in session.scalars(select(AuditEntry).where(AuditEntry.organization_id == a.org_id))]
    assert "practice.updated" in actions
    assert b.org_id  # Org B exists and saw nothing of A's


def test_a_user_email_used_by_another_organization_reveals_nothing(hub: Hub, db_url: str, tmp_path: Path) -> None:
    a = make_tenant(hub, "Org A")
    b = make_tenant(hub, "Org B")
    with api_client(hub) as client:
        first = client.post("/api/v1/users/", json={"email": "nurse@shared.example"}, headers=a.headers)
        assert first.status_code == 201
        # B's admin probes the address A uses: the answer is the one any new address gets.
        probe = client.post("/api/v1/users/", json={"email": "Nurse@Shared.example"}, headers=b.headers)
        fresh = client.post("/api/v1/users/", json={"email": "never-used@shared.example"}, headers=b.headers)
        assert probe.status_code == fresh.status_code == 201
        assert set(probe.json()) == set(fresh.json())
        assert probe.json()["id"] != first.json()["id"]
        # Each organization sees only its own user of that address.
        a_users = client.get("/api/v1/users/", headers=a.headers).json()
        b_users = client.get("/api/v1/users/", headers=b.headers).json()
        assert [u["id"] for u in a_users if u["email"] == "nurse@shared.example"] == [first.json()["id"]]
        assert [u["id"] for u in b_users if u["email"] == "nurse@shared.example"] == [probe.json()["id"]]
        # Inside one organization the address is still unique.
        again = client.post("/api/v1/users/", json={"email": "nurse@shared.example"}, headers=b.headers)
        assert again.status_code == 409
    env = _cli_env(db_url, tmp_path)
    assert len(run(["users", "add", "--org", "Org B", "--email", "other@shared.example"], env).stdout.strip()) == 36
    via_cli = run(["users", "add", "--org", "Org A", "--email", "other@shared.example"], env)
    assert len(via_cli.stdout.strip()) == 36
    with hub.sessions() as session:
        owners = sorted(
            u.organization_id for u in session.scalars(select(User).where(User.email == "other@shared.example"))
        )
    assert owners == sorted([a.org_id, b.org_id])


def test_error_messages_name_the_real_edit_command() -> None:
    from vitalbridge.errors import VitalbridgeError
    from vitalbridge.smart.oauth import TokenContext, _raise_unexpected
    from vitalbridge.smart.oauth_hints import hint
    from vitalbridge.tenancy.models import AuthMethod

    ctx = TokenContext(
        token_url="https://ehr.example.org/token",
        grant_type="client_credentials",
        client_id="c",
        auth_method=AuthMethod.private_key_jwt,
        requested_scope="system/Patient.read",
    )
    with pytest.raises(VitalbridgeError) as failed:
        _raise_unexpected(404, ctx)
    for text, option in ((str(failed.value), "--token-url"), (hint("invalid_scope", "", ctx), "--scopes")):
        assert "vitalbridge practices edit" in text
        assert "PATCH /api/v1/practices/{id}" in text
        assert option in text
        assert "token_url is" not in text  # no field name the user cannot act on alone
