"""A small FHIR server on loopback that behaves like the servers met in the field trials (issue 12):
a token endpoint (client_secret_basic, any secret), a CapabilityStatement the test chooses, and
answers the test scripts per route — including routes the server simply does not have.

Unscripted requests to a route the peer does not know get what a generic web framework sends
for an unknown path: ``404`` with ``{"detail": "Not Found"}`` (no OperationOutcome).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PRACTICE = "JAFJCD"
SCOPES = "system/Patient.read system/Observation.read system/Observation.write"


def outcome(code: str, text: str, *, expression: list[str] | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": text}
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def statement(resources: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "software": {"name": "field-trial FHIR peer"},
        "rest": [{"mode": "server", "resource": resources, **extra}],
    }


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class FhirPeer:
    def __init__(self, capability: dict[str, Any] | None = None, *, granted_scope: str = SCOPES) -> None:
        self.capability = capability or statement([])
        self.granted_scope = granted_scope
        # (method, path after the FHIR base) -> answer; "Patient" matches GET Patient?… too.
        self.routes: dict[tuple[str, str], Answer] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/oauth/oauth2/token", self._token, methods=["POST"]),
                Route(f"/fhir/r4/{PRACTICE}/{{rest:path}}", self._fhir, methods=["GET", "POST", "PUT", "DELETE"]),
            ]
        )

    def answer(self, method: str, path: str, status: int, body: Any = None, **headers: str) -> None:
        self.routes[(method, path)] = Answer(status, body, headers)

    def seen(self, method: str, path: str) -> int:
        with self.lock:
            return sum(1 for m, p, _h in self.requests if m == method and p == path)

    async def _token(self, _request: Request) -> Response:
        return JSONResponse(
            {"access_token": "peer-token", "token_type": "Bearer", "expires_in": 3600, "scope": self.granted_scope}
        )

    async def _fhir(self, request: Request) -> Response:
        path = request.path_params["rest"]
        with self.lock:
            self.requests.append((request.method, path, dict(request.headers)))
        if request.method == "GET" and path == "metadata":
            return JSONResponse(self.capability)
        found = self.routes.get((request.method, path))
        if found is None:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        if found.body is None:
            return Response(status_code=found.status, headers=found.headers)
        return JSONResponse(found.body, status_code=found.status, headers=found.headers)
