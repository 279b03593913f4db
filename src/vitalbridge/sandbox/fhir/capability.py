"""``GET /fhir/r4/{practice}/metadata``: the CapabilityStatement (FHIR R4 §3.1.0.10 "capabilities";
SMART App Launch 2.0 §2.2 security extension). No token needed, as on eCW."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from vitalbridge.sandbox.profile import ConditionalCreate
from vitalbridge.sandbox.responses import fhir_json
from vitalbridge.sandbox.state import AUTHORIZE_PATH, FHIR_PREFIX, REVOKE_PATH, TOKEN_PATH, issuer, sandbox_state

router = APIRouter()

SOFTWARE_VERSION = "0.1.0"


def _param(name: str, kind: str, doc: str) -> dict[str, str]:
    return {"name": name, "type": kind, "documentation": doc}


def capability_statement(origin: str, practice: str, *, conditional_create: bool = True) -> dict[str, Any]:
    base = f"{origin}{FHIR_PREFIX}/{practice}"
    oauth = {
        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
        "extension": [
            {"url": "token", "valueUri": origin + TOKEN_PATH},
            {"url": "authorize", "valueUri": origin + AUTHORIZE_PATH},
            {"url": "revoke", "valueUri": origin + REVOKE_PATH},
        ],
    }
    export = {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"}
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "software": {"name": "vitalbridge sandbox EHR (eClinicalWorks-like)", "version": SOFTWARE_VERSION},
        "implementation": {"description": f"Sandbox practice {practice}", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [oauth],
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": "SMART on FHIR: backend services (private_key_jwt RS384 or client_secret_basic) "
                    "and standalone launch with PKCE S256",
                },
                "resource": [
                    {
                        "type": "Patient",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            _param("name", "string", "case-insensitive substring of given or family"),
                            _param("family", "string", "case-insensitive prefix"),
                            _param("given", "string", "case-insensitive prefix"),
                            _param("birthdate", "date", "YYYY[-MM[-DD]] with optional eq/ne/gt/ge/lt/le prefix"),
                            _param("identifier", "token", "system|value or value (MRN)"),
                            _param("gender", "token", "male | female | other | unknown"),
                            _param("_id", "token", "logical id"),
                        ],
                        "operation": [export],
                    },
                    {
                        "type": "Observation",
                        "interaction": [
                            {"code": "create"},
                            {"code": "read"},
                            {"code": "vread"},
                            {"code": "search-type"},
                        ],
                        # eCW's statement does not advertise it (field notes Q5); clients must not assume it.
                        "conditionalCreate": conditional_create,
                        "searchParam": [
                            _param("patient", "reference", "Patient id or Patient/id"),
                            _param("subject", "reference", "Patient/id"),
                            _param("code", "token", "system|code or code; comma for OR"),
                            _param("category", "token", "system|code or code; comma for OR"),
                            _param("identifier", "token", "system|value or value"),
                            _param("_id", "token", "logical id"),
                        ],
                    },
                    {
                        "type": "Group",
                        "operation": [
                            {
                                "name": "export",
                                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
                            }
                        ],
                    },
                ],
            }
        ],
    }


@router.get(FHIR_PREFIX + "/{practice}/metadata")
async def metadata(practice: str, request: Request) -> Response:
    state = sandbox_state(request)
    state.patients_of(practice)
    honoured = state.behaviour.conditional_create is ConditionalCreate.honour
    return fhir_json(capability_statement(issuer(request), practice, conditional_create=honoured))
