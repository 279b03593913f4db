"""The hub's OpenAPI document tells the truth about errors (STYLE 5: one problem shape per wire).

Every ``/api`` operation can answer with the hub's problem body (``api.errors``): 401, 403, 404,
409, 413, 429 and 422 from domain validation, besides FastAPI's own 422 for malformed requests.
FastAPI documents only the latter, so clients (and the schemathesis fuzz test) would read a
valid problem body as a contract violation. This hook adds the rest.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "Machine-readable error code"},
        "detail": {"type": "string", "description": "What went wrong; never carries PHI"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_DESCRIPTIONS = {
    "401": "Missing, invalid, expired or revoked API token",
    "403": "The token's role may not use this route",
    "404": "Not found in the caller's organization",
    "409": "Conflicts with an existing object",
    "413": "Request body larger than VB_MAX_BODY_BYTES",
    "429": "Rate limited; see Retry-After",
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        for path, item in doc.get("paths", {}).items():
            if not path.startswith("/api/"):
                continue
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                for code, text in _DESCRIPTIONS.items():
                    responses.setdefault(code, {"description": text, "content": _json(_PROBLEM_REF)})
                if "422" in responses:
                    # Domain validation (ValidationFailed) answers with a problem body too.
                    content = responses["422"].setdefault("content", {}).setdefault("application/json", {})
                    current = content.get("schema")
                    content["schema"] = {"anyOf": [current, _PROBLEM_REF]} if current else _PROBLEM_REF
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
