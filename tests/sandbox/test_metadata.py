"""The CapabilityStatement at /metadata: valid FHIR R4, unauthenticated, and advertising what
the sandbox really does (SPEC §3 "test connection", §11)."""

from __future__ import annotations

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from tests.sandbox.support import PRACTICE, Sandbox


def test_metadata_is_a_valid_r4_capability_statement(sandbox: Sandbox) -> None:
    resp = sandbox.http.get(f"/fhir/r4/{PRACTICE}/metadata")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/fhir+json")
    body = resp.json()
    CapabilityStatement.model_validate(body)
    assert body["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in body["rest"][0]["resource"]}
    assert {"read", "search-type"} <= {i["code"] for i in resources["Patient"]["interaction"]}
    assert {"create", "read", "search-type"} <= {i["code"] for i in resources["Observation"]["interaction"]}
    assert resources["Observation"]["conditionalCreate"] is True
    assert {"name", "birthdate", "identifier"} <= {p["name"] for p in resources["Patient"]["searchParam"]}
    oauth = body["rest"][0]["security"]["extension"][0]
    assert oauth["url"].endswith("oauth-uris")
    uris = {e["url"]: e["valueUri"] for e in oauth["extension"]}
    assert uris["token"] == sandbox.token_url
    assert uris["authorize"] == f"{sandbox.url}/oauth/oauth2/authorize"


def test_control_api_documents_itself(sandbox: Sandbox) -> None:
    paths = sandbox.http.get("/_sandbox/openapi.json").json()["paths"]
    assert {"/_sandbox/clients", "/_sandbox/faults", "/_sandbox/stats", "/_sandbox/reset"} <= set(paths)
