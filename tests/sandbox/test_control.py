"""The /_sandbox control API: client registration rules, stats, reset, and the state file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sandbox.conftest import BASE_CONFIG
from tests.sandbox.support import PRACTICE, Sandbox, new_key, vital
from vitalbridge.sandbox.app import create_sandbox_app
from vitalbridge.servers import ServerThread


def test_register_is_an_upsert_and_never_shows_the_secret(sandbox: Sandbox) -> None:
    body = {"client_id": "c", "client_secret": "hunter2", "scopes": ["system/Patient.read"], "practices": [PRACTICE]}
    assert sandbox.http.post("/_sandbox/clients", json=body).status_code == 201
    again = sandbox.http.post("/_sandbox/clients", json=body | {"scopes": ["system/Patient.rs"]})
    assert again.status_code == 200
    assert again.json()["scopes"] == ["system/Patient.rs"]
    listed = sandbox.http.get("/_sandbox/clients")
    assert "hunter2" not in listed.text
    assert listed.json()["clients"][0]["has_client_secret"] is True
    assert sandbox.http.delete("/_sandbox/clients/c").status_code == 204
    assert sandbox.http.delete("/_sandbox/clients/c").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"client_id": "c", "client_secret": "s", "practices": ["NOPE"]},
        {"client_id": "c", "client_secret": "s", "practices": []},
        {"client_id": "c", "client_secret": "s", "practices": [PRACTICE], "scopes": ["system/Patient.readd"]},
        {"client_id": "c", "client_secret": "s", "practices": [PRACTICE], "scopes": ["patient/Observation.rs?x=y"]},
        {"client_id": "c", "jwks_url": "http://x/jwks", "jwks": {"keys": []}, "practices": [PRACTICE]},
        {"client_id": "c", "jwks": {"not": "a jwks"}, "practices": [PRACTICE]},
        {"client_id": "c", "jwks_url": "ftp://x/jwks", "practices": [PRACTICE]},
        {"client_id": "c", "practices": [PRACTICE]},
    ],
)
def test_register_refusals(sandbox: Sandbox, body: dict[str, Any]) -> None:
    assert sandbox.http.post("/_sandbox/clients", json=body).status_code == 422


def test_reset_clears_data_tokens_and_stats_but_keeps_clients(sandbox: Sandbox) -> None:
    sandbox.register("c", client_secret="s")
    token = sandbox.basic_token("c", "s")
    sandbox.post_observation(token, vital(sandbox.patient_ids(token, count=1)[0]))
    sandbox.http.put("/_sandbox/faults", json={"latency_ms": 1})
    assert sandbox.http.post("/_sandbox/reset").json() == {"reset": True, "clients_cleared": False}

    assert sandbox.stored() == []
    assert sandbox.get("Patient", token).status_code == 401
    assert sandbox.http.get("/_sandbox/faults").json() == {"faults": []}
    stats = sandbox.stats()
    assert stats["token_requests"] == 0
    assert stats["fhir_requests_by_practice"] == {PRACTICE: 1}  # the 401 just above
    assert sandbox.basic_token("c", "s")


def test_stats_report_what_clients_did(sandbox: Sandbox) -> None:
    sandbox.register("c", client_secret="s")
    token = sandbox.basic_token("c", "s")
    sandbox.request_token({"grant_type": "client_credentials"}, auth=("c", "wrong"))
    sandbox.get("Patient", token)
    stats = sandbox.stats()
    assert stats["token_requests"] == 2
    assert stats["token_requests_by_client"] == {"c": 2}
    assert stats["token_requests_by_grant_type"] == {"client_credentials": 2}
    assert stats["tokens_issued"] == 1
    assert stats["token_errors"] == {"invalid_client": 1}
    assert stats["fhir_requests_by_practice"] == {PRACTICE: 1}
    assert stats["rate_limited"] == 0


def test_sample_patients_lists_ids_for_demos(sandbox: Sandbox) -> None:
    rows = sandbox.http.get("/_sandbox/patients", params={"practice": PRACTICE, "limit": 3}).json()
    assert rows["total"] == sandbox.config.patients_per_practice
    assert len(rows["patients"]) == 3
    assert rows["patients"][0]["mrn"] == "MRN-0000001"


def test_state_file_keeps_clients_and_observations_across_restarts(tmp_path: Path) -> None:
    config = replace(BASE_CONFIG, state_file=tmp_path / "sandbox-state.json")
    with ServerThread(create_sandbox_app(config)) as url, httpx.Client(base_url=url) as http:
        before = Sandbox(url, http, config)
        before.register("c", client_secret="s")
        token = before.basic_token("c", "s")
        created = before.post_observation(token, vital(before.patient_ids(token, count=1)[0])).json()
    # Stopping the server saved the file; only its owner may read it (it holds secrets).
    assert config.state_file is not None
    assert config.state_file.stat().st_mode & 0o777 == 0o600

    with ServerThread(create_sandbox_app(config)) as url, httpx.Client(base_url=url) as http:
        after = Sandbox(url, http, config)
        assert after.basic_token("c", "s")
        assert after.stored() == [created]


def test_inline_jwks_keeps_public_members_only(sandbox: Sandbox) -> None:
    key = new_key()
    private_jwks = {"keys": [key.as_dict(private=True)]}
    shown = sandbox.register("keyed", jwks=private_jwks)
    assert "d" not in shown["jwks"]["keys"][0]
    assert "d" not in sandbox.http.get("/_sandbox/clients").json()["clients"][0]["jwks"]["keys"][0]
    sandbox.keys["keyed"] = key
    assert sandbox.backend_token("keyed")
