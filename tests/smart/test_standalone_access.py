"""A practice whose EHR allows only user consent works end to end on the standalone grant
(issue 12, item 6): search, import and delivery use the user-granted token, which is refreshed
silently; a refresh the EHR refuses shows as "re-authorize" (deliveries wait, none is lost);
``POST /api/v1/ecw/auth/refresh/`` and ``vitalbridge ecw refresh`` show and force a refresh.

The sandbox plays the EHR: the hub's client is registered with user/ scopes only, so a
client_credentials request could not get what the hub needs — and none is ever sent.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from tests.conftest import TEST_SECRET_KEY
from tests.patients.support import sandbox_patients
from tests.patients.test_relink import Clinic
from tests.smart.conftest import BACKEND_SCOPES, CLIENT_ID, SmartEnv
from tests.smart.test_cli import run
from tests.smart.test_standalone import connect, grant_row, status
from tests.test_cli import cli_env
from vitalbridge.db.base import utcnow
from vitalbridge.delivery.deliver import deliver
from vitalbridge.delivery.models import OutboxEntry, OutboxStatus
from vitalbridge.ehr.connection import PracticeConnection
from vitalbridge.smart.assertion import JWT_BEARER, client_assertion
from vitalbridge.smart.launch import launch_scopes
from vitalbridge.smart.models import REFRESH_TOKEN_PURPOSE, EhrToken
from vitalbridge.tenancy.models import EhrAccess, Practice

USER_SCOPES = launch_scopes(BACKEND_SCOPES)


def user_consent_only(env: SmartEnv) -> None:
    """The EHR registration allows user/ scopes only; the practice uses the standalone grant."""
    env.register_client(scopes=USER_SCOPES)
    with env.hub.sessions() as session, session.begin():
        practice = session.get(Practice, env.practice.id)
        assert practice is not None
        practice.ehr_access = EhrAccess.standalone
        practice.scopes = " ".join(s for s in USER_SCOPES if s != "offline_access")
        env.practice = PracticeConnection.of(practice)


def token_stats(env: SmartEnv) -> dict[str, int]:
    stats: dict[str, int] = env.sandbox.stats()["token_requests_by_grant_type"]
    return stats


def rows(env: SmartEnv) -> list[OutboxEntry]:
    with env.hub.sessions() as session:
        return list(session.scalars(select(OutboxEntry).order_by(OutboxEntry.created_at)))


def deliver_all(env: SmartEnv) -> list[str]:
    with env.hub.sessions() as session, session.begin():
        # Rows waiting for a retry are due now (the test does not wait out the backoff).
        session.execute(
            update(OutboxEntry).where(OutboxEntry.status == OutboxStatus.pending).values(next_attempt_at=utcnow())
        )
    return [deliver(env.hub, r.id, sleep=lambda _s: None).status for r in rows(env) if r.status is OutboxStatus.pending]


def revoke_behind_the_hubs_back(env: SmartEnv) -> None:
    refresh = env.hub.sealer.open_text(grant_row(env).refresh_token_sealed or b"", REFRESH_TOKEN_PURPOSE)
    signing = env.smart.keyring.signing_key(env.practice.key_set_owner)
    assertion = client_assertion(signing, client_id=CLIENT_ID, token_url=env.sandbox.token_url)
    resp = env.sandbox.http.post(
        "/oauth/oauth2/revoke",
        data={"token": refresh, "client_assertion_type": JWT_BEARER, "client_assertion": assertion},
    )
    assert resp.status_code == 200


def refresh_api(env: SmartEnv) -> dict[str, Any]:
    resp = env.api.post("/api/v1/ecw/auth/refresh/", json={"practice": "JAFJCD"}, headers=env.tenant.headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_a_user_consent_only_practice_works_end_to_end(smart_env: SmartEnv, tmp_path: Path) -> None:
    env = smart_env
    user_consent_only(env)
    headers = env.tenant.headers

    # Before anyone authorized: a clear "re-authorize", on the status page and from a search.
    report = status(env)
    assert report["ehr_access"] == "standalone"
    assert any("standalone grant, which is not usable" in w for w in report["warnings"])
    early = env.api.get("/api/v1/ecw/patients/search/", params={"name": "a"}, headers=headers)
    assert early.status_code == 502
    assert early.json()["error"] == "ehr_reauthorize"
    assert "re-authorize" in early.json()["detail"]

    connect(env)
    assert status(env)["oauth2_configured"] is True

    # Search and import with the user's token.
    [wanted] = sandbox_patients(env, 1)
    found = env.api.get("/api/v1/ecw/patients/search/", params={"name": wanted["family"]}, headers=headers)
    assert found.status_code == 200, found.text
    assert wanted["id"] in [p["ecw_id"] for p in found.json()["patients"]]
    clinic = Clinic(env, wanted["id"])  # imports through the API, assigns a cuff

    # Delivery with the user's token.
    clinic.reading("standalone-1")
    assert set(deliver_all(env)) == {"delivered"}
    assert token_stats(env).get("client_credentials", 0) == 0

    # Silent refresh when the access token is due.
    with env.hub.sessions() as session, session.begin():
        session.execute(update(EhrToken).values(renew_at=utcnow() - timedelta(seconds=1)))
    clinic.reading("standalone-2")
    assert set(deliver_all(env)) == {"delivered"}
    assert token_stats(env)["refresh_token"] == 1

    # A forced refresh from the API shows the new token's lifetime; the CLI does the same.
    refreshed = refresh_api(env)
    assert refreshed["status"] == "refreshed"
    assert refreshed["ehr_access"] == "standalone"
    assert refreshed["expires_in"] > 0
    assert refreshed["expires_at"]
    assert token_stats(env)["refresh_token"] == 2
    cli = cli_env(str(env.hub.settings.database_url), tmp_path)
    cli.update({"VB_SECRET_KEY": TEST_SECRET_KEY, "VB_PUBLIC_URL": env.hub_url})
    printed = json.loads(run(["ecw", "refresh", "--org", "Clinic A", "--practice", "JAFJCD"], cli).stdout)
    assert printed["status"] == "refreshed"
    assert token_stats(env)["refresh_token"] == 3

    # The EHR stops honouring the grant: a refresh says re-authorize; deliveries wait.
    revoke_behind_the_hubs_back(env)
    refused = refresh_api(env)
    assert refused["status"] == "error"
    assert refused["error"] == "ehr_reauthorize"
    assert refused["oauth_error"] == "invalid_grant"
    assert refused["detail"].startswith("re-authorize practice JAFJCD")
    assert status(env)["oauth2_reason"].startswith("re-authorize")
    failed = run(["ecw", "refresh", "--org", "Clinic A", "--practice", "JAFJCD"], cli, ok=False)
    assert failed.returncode == 1
    assert "re-authorize" in json.loads(failed.stdout)["detail"]

    clinic.reading("standalone-3")
    assert set(deliver_all(env)) == {"retry"}
    waiting = [r for r in rows(env) if r.status is not OutboxStatus.delivered]
    assert waiting  # a cuff reading: blood pressure and pulse
    for row in waiting:
        assert row.status is OutboxStatus.pending
        assert (row.last_error or "").startswith("ehr_reauthorize")

    # A user authorizes again: the waiting delivery goes through, nothing was lost.
    connect(env)
    assert set(deliver_all(env)) == {"delivered"}
    assert all(r.status is OutboxStatus.delivered for r in rows(env))
    assert len(rows(env)) == 3 * len(waiting)
    assert token_stats(env).get("client_credentials", 0) == 0


def test_backend_practices_keep_backend_tokens(smart_env: SmartEnv) -> None:
    # The default is unchanged: a practice without ehr_access uses backend services.
    env = smart_env
    assert status(env)["ehr_access"] == "backend"
    assert env.client().get(env.practice, "Patient", params={"_count": 1}).status_code == 200
    assert set(token_stats(env)) == {"client_credentials"}
    no_grant = refresh_api(env)
    assert no_grant["status"] == "error"
    assert no_grant["error"] == "ehr_reauthorize"


def test_another_tenant_cannot_refresh_this_practice(smart_env: SmartEnv) -> None:
    from tests.support import make_tenant

    other = make_tenant(smart_env.hub, "Clinic B")
    resp = smart_env.api.post("/api/v1/ecw/auth/refresh/", json={"practice": "JAFJCD"}, headers=other.headers)
    assert resp.status_code == 404


def test_the_cli_registers_a_user_consent_practice(db_url: str, tmp_path: Path) -> None:
    from tests.test_cli import run as run_cli

    env = cli_env(db_url, tmp_path)
    run_cli(["migrate"], env)
    org_id = run_cli(["orgs", "create", "Consent Clinic"], env).stdout.strip()
    common = [
        "practices",
        "add",
        "--org",
        org_id,
        "--fhir-base-url",
        "https://fhir.example.org/fhir/r4/{code}",
        "--token-url",
        "https://oauth.example.org/oauth/oauth2/token",
        "--client-id",
        "abc",
    ]
    for code, extra in (("USERONLY", ["--ehr-access", "standalone"]), ("DEFAULT", [])):
        args = [a.replace("{code}", code) for a in common] + ["--code", code, *extra]
        run_cli(args, env)
    listed = json.loads(run_cli(["practices", "list", "--org", org_id, "--json"], env).stdout)
    assert {p["practice_code"]: p["ehr_access"] for p in listed} == {"USERONLY": "standalone", "DEFAULT": "backend"}
    wrong = run_cli([*common, "--code", "BAD", "--ehr-access", "password"], env, ok=False)
    assert wrong.returncode == 2
