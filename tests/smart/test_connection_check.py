"""``test-connection`` proves the token and the interactions, not just a public ``/metadata``
(issue 12, item 3), and ``ecw status`` compares granted with requested scopes.

The CapabilityStatements below are written for these tests after the shapes of FHIR R4
``capabilitystatement.html`` (``rest.resource.interaction``, ``searchParam``, ``conditionalCreate``,
``operation`` by name or by canonical ``definition``, system-level ``rest.operation``) and of the
servers in the field trials: a read/search-only facade that offers create on no clinical type
(as docs of eCW's FHIR facade describe), a server without Patient search, and Bulk Data declared
only at system level. None is copied from a server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import TEST_SECRET_KEY
from tests.delivery.support import hub_http
from tests.fhir_peer import PRACTICE, FhirPeer, statement
from tests.smart.conftest import SmartEnv
from tests.smart.test_cli import run
from tests.support import Tenant, make_tenant
from tests.test_cli import cli_env
from vitalbridge.audit.models import AuditEntry
from vitalbridge.fhir.capabilities import ServerCapabilities, Support
from vitalbridge.runtime import Hub
from vitalbridge.servers import ServerThread
from vitalbridge.smart.scopes import Scope, allows, lacking, not_granted
from vitalbridge.tenancy import service
from vitalbridge.tenancy.models import AuthMethod
from vitalbridge.tenancy.schemas import PracticeIn

PATIENT_FULL = {
    "type": "Patient",
    "interaction": [{"code": "read"}, {"code": "search-type"}],
    "searchParam": [{"name": n, "type": "string"} for n in ("name", "birthdate", "identifier", "_id")],
}
OBSERVATION_CREATE = {
    "type": "Observation",
    "interaction": [{"code": "create"}, {"code": "search-type"}],
    "conditionalCreate": True,
    "searchParam": [{"name": "identifier", "type": "token"}],
}
EMPTY_BUNDLE = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}
REQUESTED = ["system/Patient.read", "system/Observation.read", "system/Observation.write"]


@contextmanager
def peer_practice(hub: Hub, peer: FhirPeer, **practice: Any) -> Iterator[tuple[Tenant, httpx.Client]]:
    """The hub's API on loopback, one tenant with one practice pointing at ``peer``."""
    with ServerThread(peer.app) as ehr_url, hub_http(hub) as hub_url, httpx.Client(base_url=hub_url) as api:
        hub.settings.ecw_rate_limit = 10_000.0
        tenant = make_tenant(hub, "Clinic A")
        data: dict[str, Any] = {
            "practice_code": PRACTICE,
            "fhir_base_url": f"{ehr_url}/fhir/r4/{PRACTICE}",
            "token_url": f"{ehr_url}/oauth/oauth2/token",
            "client_id": "field-trial",
            "auth_method": AuthMethod.client_secret_basic,
            "client_secret": "s3cret-for-tests",
            "scopes": REQUESTED,
            **practice,
        }
        with hub.sessions() as session, session.begin():
            service.add_practice(session, tenant.org_id, PracticeIn.model_validate(data), hub.sealer, hub.settings)
        api.timeout = 60
        yield tenant, api


def run_check(api: httpx.Client, tenant: Tenant, **body: Any) -> dict[str, Any]:
    resp = api.post("/api/v1/ecw/test/connection/", json=body, headers=tenant.headers)
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


def findings(result: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {f["check"]: (f["status"], f["detail"]) for f in result["findings"]}


# -- against the sandbox EHR ------------------------------------------------------------------


def test_the_sandbox_passes_every_check_with_one_authenticated_call(smart_env: SmartEnv) -> None:
    result = run_check(smart_env.api, smart_env.tenant, practice="JAFJCD", population_sync=True)
    assert result["status"] == "success", result
    got = findings(result)
    for check in (
        "token",
        "scopes.granted",
        "fhir_version",
        "Patient.read",
        "Patient.search-type",
        "Patient.search-params",
        "Observation.create",
        "Observation.conditional-create",
        "$export",
        "authenticated_call",
    ):
        assert got[check][0] == "ok", (check, got[check])
    assert set(result["granted_scopes"]) >= set(REQUESTED)
    # The authenticated call reached the EHR's Patient search with a token (audited, names only).
    with smart_env.hub.sessions() as session:
        calls = session.scalars(select(AuditEntry).where(AuditEntry.action == "ehr.call")).all()
    probes = [c for c in calls if c.resource_type == "Patient" and c.detail.get("interaction") == "search"]
    assert probes
    assert probes[-1].status_code == 200
    assert probes[-1].detail["params"] == ["_id"]


def test_population_sync_is_checked_only_when_in_use(smart_env: SmartEnv) -> None:
    result = run_check(smart_env.api, smart_env.tenant, practice="JAFJCD")
    assert findings(result)["$export"][0] == "skipped"


# -- against servers that differ from the sandbox ---------------------------------------------


def test_a_public_metadata_no_longer_hides_a_refused_token(hub: Hub) -> None:
    # /metadata answers anyone; every authenticated call is refused. This used to pass.
    peer = FhirPeer(statement([PATIENT_FULL, OBSERVATION_CREATE]))
    peer.answer("GET", "Patient", 401, None, **{"WWW-Authenticate": 'Bearer error="invalid_token"'})
    with peer_practice(hub, peer) as (tenant, api):
        result = run_check(api, tenant)
    assert result["status"] == "error"
    status, detail = findings(result)["authenticated_call"]
    assert status == "error"
    assert "invalid_token" in detail
    assert "authenticated_call" in result["detail"]


def test_a_scope_refusal_on_the_probe_is_an_error(hub: Hub) -> None:
    peer = FhirPeer(statement([PATIENT_FULL, OBSERVATION_CREATE]))
    peer.answer("GET", "Patient", 403, None)
    with peer_practice(hub, peer) as (tenant, api):
        result = run_check(api, tenant)
    assert findings(result)["authenticated_call"][0] == "error"
    assert "403" in findings(result)["authenticated_call"][1]


def test_a_read_search_only_facade_fails_delivery_and_names_it(hub: Hub) -> None:
    facade = statement(
        [
            PATIENT_FULL,
            {"type": "Observation", "interaction": [{"code": "read"}, {"code": "search-type"}]},
            {"type": "QuestionnaireResponse", "interaction": [{"code": "create"}]},
        ]
    )
    peer = FhirPeer(facade)
    peer.answer("GET", "Patient", 200, EMPTY_BUNDLE)
    with peer_practice(hub, peer) as (tenant, api):
        result = run_check(api, tenant)
    got = findings(result)
    assert result["status"] == "error"
    assert got["Observation.create"][0] == "error"
    assert "does not support Observation create" in got["Observation.create"][1]
    assert got["authenticated_call"][0] == "ok"


def test_a_server_without_patient_search_is_probed_by_read(hub: Hub) -> None:
    peer = FhirPeer(statement([{"type": "Patient", "interaction": [{"code": "read"}]}, OBSERVATION_CREATE]))
    with peer_practice(hub, peer) as (tenant, api):
        result = run_check(api, tenant)
    got = findings(result)
    assert got["Patient.search-type"][0] == "error"
    assert got["Patient.read"][0] == "ok"
    # Patient/<probe> → a framework 404: the token was accepted, the id does not exist.
    assert got["authenticated_call"][0] == "ok"
    assert peer.seen("GET", "Patient/vitalbridge-connection-test") == 1
    assert peer.seen("GET", "Patient") == 0


@pytest.mark.parametrize(
    ("observation", "expected"),
    [
        ({**OBSERVATION_CREATE}, "ok"),
        ({**OBSERVATION_CREATE, "conditionalCreate": False}, "warning"),
        ({"type": "Observation", "interaction": [{"code": "create"}]}, "error"),
        (
            {
                "type": "Observation",
                "interaction": [{"code": "create"}, {"code": "search-type"}],
                "searchParam": [{"name": "code", "type": "token"}],
            },
            "error",
        ),
    ],
)
def test_duplicate_protection_is_checked(hub: Hub, observation: dict[str, Any], expected: str) -> None:
    peer = FhirPeer(statement([PATIENT_FULL, observation]))
    peer.answer("GET", "Patient", 200, EMPTY_BUNDLE)
    with peer_practice(hub, peer) as (tenant, api):
        result = run_check(api, tenant)
    assert findings(result)["Observation.conditional-create"][0] == expected


def test_missing_search_parameters_are_named(hub: Hub) -> None:
    patient = {**PATIENT_FULL, "searchParam": [{"name": "identifier", "type": "token"}]}
    peer = FhirPeer(statement([patient, OBSERVATION_CREATE]))
    peer.answer("GET", "Patient", 200, EMPTY_BUNDLE)
    with peer_practice(hub, peer) as (tenant, api):
        result = run_check(api, tenant)
    status, detail = findings(result)["Patient.search-params"]
    assert status == "warning"
    assert "name" in detail
    assert "birthdate" in detail
    assert result["status"] == "success"
    assert any(w.startswith("Patient.search-params") for w in result["warnings"])


@pytest.mark.parametrize(
    ("extra", "patient_ops", "expected"),
    [
        ({}, [], "error"),
        (
            {
                "operation": [
                    {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}
                ]
            },
            [],
            "ok",
        ),
        ({}, [{"name": "$export", "definition": "http://example.org/OperationDefinition/x"}], "ok"),
        (
            {},
            [
                {
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
                }
            ],
            "ok",
        ),
    ],
)
def test_export_is_required_when_population_sync_is_on(
    hub: Hub, extra: dict[str, Any], patient_ops: list[dict[str, str]], expected: str
) -> None:
    peer = FhirPeer(statement([{**PATIENT_FULL, "operation": patient_ops}, OBSERVATION_CREATE], **extra))
    peer.answer("GET", "Patient", 200, EMPTY_BUNDLE)
    with peer_practice(hub, peer) as (tenant, api):
        result = run_check(api, tenant, population_sync=True)
    assert findings(result)["$export"][0] == expected


def test_an_hl7_practice_is_not_asked_for_observation_create(hub: Hub) -> None:
    peer = FhirPeer(statement([PATIENT_FULL]), granted_scope="system/Patient.read")
    peer.answer("GET", "Patient", 200, EMPTY_BUNDLE)
    with peer_practice(hub, peer, delivery_channel="hl7v2", scopes=["system/Patient.read"]) as (tenant, api):
        result = run_check(api, tenant)
    got = findings(result)
    assert got["Observation.create"][0] == "skipped"
    assert "Observation.conditional-create" not in got
    assert result["status"] == "success", result


# -- scopes: granted vs requested, in the test and on the status page -------------------------


def test_narrower_granted_scopes_warn_in_the_test_the_api_status_and_the_cli(hub: Hub, tmp_path: Path) -> None:
    peer = FhirPeer(statement([PATIENT_FULL, OBSERVATION_CREATE]), granted_scope="system/Patient.read")
    peer.answer("GET", "Patient", 200, EMPTY_BUNDLE)
    with peer_practice(hub, peer) as (tenant, api):
        result = run_check(api, tenant)
        status = api.get("/api/v1/ecw/auth/status/", params={"practice": PRACTICE}, headers=tenant.headers).json()
    got = findings(result)
    assert got["scopes.granted"][0] == "warning"
    assert "system/Observation.write" in got["scopes.granted"][1]
    assert got["scopes.Observation.c"][0] == "warning"
    assert "delivery" in got["scopes.Observation.c"][1]
    assert status["granted_scopes"] == ["system/Patient.read"]
    assert any("did not grant requested scope(s)" in w for w in status["warnings"])
    assert any("do not allow delivery" in w for w in status["warnings"])

    env = cli_env(str(hub.settings.database_url), tmp_path)
    env["VB_SECRET_KEY"] = TEST_SECRET_KEY
    out = run(["ecw", "status", "--org", "Clinic A", "--practice", PRACTICE], env)
    assert any("do not allow delivery" in w for w in json.loads(out.stdout)["warnings"])


def test_status_has_no_scope_warnings_before_any_token(hub: Hub) -> None:
    peer = FhirPeer(statement([PATIENT_FULL, OBSERVATION_CREATE]))
    with peer_practice(hub, peer) as (tenant, api):
        status = api.get("/api/v1/ecw/auth/status/", params={"practice": PRACTICE}, headers=tenant.headers).json()
    assert status["granted_scopes"] is None
    assert not any("scope" in w for w in status["warnings"])


def test_a_tenant_cannot_test_another_tenants_practice(hub: Hub) -> None:
    peer = FhirPeer(statement([PATIENT_FULL, OBSERVATION_CREATE]))
    with peer_practice(hub, peer) as (_tenant, api):
        other = make_tenant(hub, "Clinic B")
        resp = api.post("/api/v1/ecw/test/connection/", json={"practice": PRACTICE}, headers=other.headers)
    assert resp.status_code == 404
    assert peer.seen("GET", "metadata") == 0


# -- the pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "resource", "permission", "allowed"),
    [
        ("system/Patient.read", "Patient", "r", True),
        ("system/Patient.read", "Patient", "s", True),
        ("system/Patient.read", "Patient", "c", False),
        ("system/Observation.write", "Observation", "c", True),
        ("system/Observation.cs", "Observation", "c", True),
        ("system/Observation.rs", "Observation", "c", False),
        ("system/*.cruds", "Observation", "d", True),
        ("system/*.*", "Patient", "s", True),
        ("user/Observation.c?category=vital-signs", "Observation", "c", False),  # user/, asked system/
        ("system/Observation.sc", "Observation", "c", False),  # v2 letters out of order: not a scope
        ("offline_access", "Patient", "r", False),
    ],
)
def test_smart_scopes_v1_and_v2(text: str, resource: str, permission: str, allowed: bool) -> None:
    assert allows([text], resource, permission, ("system",)) is allowed


def test_restricted_v2_scopes_and_equivalent_grants() -> None:
    restricted = Scope.parse(
        "patient/Observation.c?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"
    )
    assert restricted is not None
    assert restricted.restricted
    assert restricted.permissions == frozenset("c")
    assert not_granted(["system/Patient.read", "system/Observation.write"], ["system/*.cruds"]) == []
    assert not_granted(["system/Observation.write", "offline_access"], ["system/Observation.cs"]) == [
        "system/Observation.write",
        "offline_access",
    ]
    assert [n.task for n in lacking(["system/Patient.rs"], ("system",), fhir_delivery=False)] == []


def test_capability_parsing_is_three_valued() -> None:
    caps = ServerCapabilities.parse(statement([{"type": "Patient"}, OBSERVATION_CREATE]))
    assert caps is not None
    assert caps.interaction("Patient", "read") is Support.undeclared
    assert caps.interaction("Observation", "create") is Support.supported
    assert caps.interaction("Observation", "delete") is Support.unsupported
    assert caps.interaction("Encounter", "read") is Support.unsupported
    assert caps.search_params("Patient", ("name",)) is None
    assert ServerCapabilities.parse({"resourceType": "Bundle"}) is None
