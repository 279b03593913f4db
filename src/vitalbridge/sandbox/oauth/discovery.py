"""``GET /fhir/r4/{practice}/.well-known/smart-configuration`` (SMART App Launch 2.0 §2.1
"Conformance"): where the OAuth endpoints are and what they accept. No token needed."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vitalbridge.sandbox.state import AUTHORIZE_PATH, FHIR_PREFIX, REVOKE_PATH, TOKEN_PATH, issuer, sandbox_state

router = APIRouter()

CAPABILITIES = [
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-standalone-patient",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
]

SCOPES_SUPPORTED = [
    "system/Patient.read",
    "system/Patient.rs",
    "system/Observation.read",
    "system/Observation.write",
    "system/Observation.rs",
    "system/Observation.c",
    "system/*.read",
    "user/Patient.read",
    "user/Observation.read",
    "user/Observation.write",
    "patient/Patient.read",
    "patient/Observation.read",
    "patient/Observation.write",
    "launch/patient",
    "offline_access",
    "online_access",
]


def smart_configuration(origin: str) -> dict[str, object]:
    return {
        "token_endpoint": origin + TOKEN_PATH,
        "authorization_endpoint": origin + AUTHORIZE_PATH,
        "revocation_endpoint": origin + REVOKE_PATH,
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": SCOPES_SUPPORTED,
        "capabilities": CAPABILITIES,
    }


@router.get(FHIR_PREFIX + "/{practice}/.well-known/smart-configuration")
async def smart_config(practice: str, request: Request) -> Response:
    sandbox_state(request).patients_of(practice)
    return JSONResponse(smart_configuration(issuer(request)))
