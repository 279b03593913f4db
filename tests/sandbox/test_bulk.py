"""Bulk Data $export: kick-off, polling (202 + X-Progress + Retry-After, 429 when too eager),
manifest, streamed NDJSON downloads, cancel (FHIR Bulk Data Access IG v2; SPEC §4)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.sandbox.conftest import SandboxFactory
from tests.sandbox.support import PRACTICE, Sandbox, vital

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def _client(sb: Sandbox, scopes: list[str] | None = None) -> str:
    sb.register("bulk", client_secret="s", scopes=scopes or ["system/*.read", "system/Observation.write"])
    return sb.basic_token("bulk", "s")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _kickoff(sb: Sandbox, token: str, path: str = "Patient/$export", **params: str) -> httpx.Response:
    return sb.get(path, token, params=params, headers=ASYNC)


def _wait_for_manifest(sb: Sandbox, token: str, status_url: str) -> httpx.Response:
    for _ in range(20):
        resp = sb.http.get(status_url, headers=_auth(token))
        if resp.status_code not in (202, 429):
            return resp
        time.sleep(int(resp.headers["retry-after"]))
    raise AssertionError("export never finished")


def _ndjson(resp: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in resp.text.splitlines()]


def test_export_poll_manifest_download(make_sandbox: SandboxFactory) -> None:
    sb = make_sandbox(export_job_s=0.5)
    token = _client(sb)
    patient = sb.patient_ids(token, count=1)[0]
    for n in range(3):
        assert sb.post_observation(token, vital(patient, identifier=f"r{n}")).status_code == 201

    kickoff = _kickoff(sb, token)
    assert kickoff.status_code == 202
    status_url = kickoff.headers["content-location"]
    assert status_url.startswith(sb.base())

    running = sb.http.get(status_url, headers=_auth(token))
    assert running.status_code == 202
    assert running.headers["x-progress"]
    assert int(running.headers["retry-after"]) >= 1
    too_soon = sb.http.get(status_url, headers=_auth(token))
    assert too_soon.status_code == 429
    assert int(too_soon.headers["retry-after"]) >= 1

    done = _wait_for_manifest(sb, token, status_url)
    assert done.status_code == 200
    assert done.headers["expires"].endswith("GMT")
    manifest = done.json()
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"].endswith("Patient/$export")
    assert manifest["transactionTime"]
    assert manifest["error"] == []
    counts = {o["type"]: o["count"] for o in manifest["output"]}
    assert counts == {"Patient": sb.config.patients_per_practice, "Observation": 3}

    for output in manifest["output"]:
        assert sb.http.get(output["url"]).status_code == 401
        with sb.http.stream("GET", output["url"], headers=_auth(token)) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("application/fhir+ndjson")
            resp.read()
        lines = _ndjson(resp)
        assert len(lines) == output["count"]
        assert {r["resourceType"] for r in lines} == {output["type"]}


def test_group_export_type_filter_and_file_splitting(make_sandbox: SandboxFactory) -> None:
    sb = make_sandbox(export_file_max_resources=50)
    token = _client(sb)
    kickoff = _kickoff(sb, token, "Group/all/$export", _type="Patient")
    manifest = _wait_for_manifest(sb, token, kickoff.headers["content-location"]).json()
    assert [(o["type"], o["count"]) for o in manifest["output"]] == [("Patient", 50), ("Patient", 50), ("Patient", 20)]
    ids: list[str] = []
    for output in manifest["output"]:
        ids += [r["id"] for r in _ndjson(sb.http.get(output["url"], headers=_auth(token)))]
    assert len(set(ids)) == sb.config.patients_per_practice


def test_since_filters_by_last_updated(sandbox: Sandbox) -> None:
    token = _client(sandbox)
    kickoff = _kickoff(sandbox, token, _since="2030-01-01T00:00:00Z")
    manifest = _wait_for_manifest(sandbox, token, kickoff.headers["content-location"]).json()
    assert manifest["output"] == []


def test_cancel_removes_the_job(make_sandbox: SandboxFactory) -> None:
    sb = make_sandbox(export_job_s=30)
    token = _client(sb)
    status_url = _kickoff(sb, token).headers["content-location"]
    assert sb.http.delete(status_url, headers=_auth(token)).status_code == 202
    assert sb.http.get(status_url, headers=_auth(token)).status_code == 404
    assert sb.http.delete(status_url, headers=_auth(token)).status_code == 404


def test_status_is_private_to_the_client_that_started_it(sandbox: Sandbox) -> None:
    token = _client(sandbox)
    status_url = _kickoff(sandbox, token).headers["content-location"]
    sandbox.register("other", client_secret="s", scopes=["system/*.read"])
    other = sandbox.basic_token("other", "s")
    assert sandbox.http.get(status_url, headers=_auth(other)).status_code == 404
    assert sandbox.http.get(status_url).status_code == 401


@pytest.mark.parametrize(
    ("path", "headers", "params", "status"),
    [
        ("Patient/$export", {"Accept": "application/fhir+json"}, {}, 400),
        ("Patient/$export", ASYNC, {"_type": "Condition"}, 400),
        ("Patient/$export", ASYNC, {"_since": "yesterday"}, 400),
        ("Patient/$export", ASYNC, {"_outputFormat": "text/csv"}, 400),
        ("Patient/$export", ASYNC, {"_elements": "id"}, 400),
        ("Group/cardiology/$export", ASYNC, {}, 404),
    ],
)
def test_kickoff_refusals(
    sandbox: Sandbox, path: str, headers: dict[str, str], params: dict[str, str], status: int
) -> None:
    token = _client(sandbox)
    resp = sandbox.get(path, token, params=params, headers=headers)
    assert resp.status_code == status
    assert resp.json()["resourceType"] == "OperationOutcome"


def test_export_needs_read_scope_for_each_type(sandbox: Sandbox) -> None:
    token = _client(sandbox, scopes=["system/Patient.read"])
    resp = _kickoff(sandbox, token, _type="Patient,Observation")
    assert resp.status_code == 403
    assert "system/Observation.read" in resp.json()["issue"][0]["diagnostics"]
    ok = _kickoff(sandbox, token)
    manifest = _wait_for_manifest(sandbox, token, ok.headers["content-location"]).json()
    assert {o["type"] for o in manifest["output"]} == {"Patient"}
    assert sandbox.stats()["exports_started"] == 1
    assert PRACTICE in ok.headers["content-location"]
