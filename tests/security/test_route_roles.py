"""Every /api/v1 route declares who may call it (``require_role`` or ``open_route``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from vitalbridge.api.deps import open_route, require_role, route_access
from vitalbridge.app import create_app
from vitalbridge.runtime import Hub
from vitalbridge.tenancy.models import Role


def api_routes(app: FastAPI) -> list[tuple[str, list[str], Any]]:
    """(path, methods, effective dependant) of every /api route, included routers flattened."""
    found = []
    for ctx in iter_route_contexts(app.routes):
        if isinstance(ctx.original_route, APIRoute) and (ctx.path or "").startswith("/api/"):
            found.append((str(ctx.path), sorted(ctx.methods or ()), ctx.dependant))
    return found


def undeclared_api_routes(app: FastAPI) -> list[str]:
    return [f"{methods} {path}" for path, methods, dep in api_routes(app) if route_access(dep) is None]


def test_every_api_route_declares_its_roles(hub: Hub) -> None:
    app = create_app(hub=hub, background=False)
    routes = api_routes(app)
    assert len(routes) >= 9
    assert undeclared_api_routes(app) == [], "declare require_role(...) or open_route('why') on these routes"
    by_path = {(path, m): route_access(dep) for path, methods, dep in routes for m in methods}
    assert by_path[("/api/v1/audit/", "GET")] == frozenset({Role.admin})
    assert by_path[("/api/v1/tokens/{token_id}", "DELETE")] == frozenset({Role.admin})
    assert by_path[("/api/v1/practices/", "GET")] == frozenset(Role)


def test_the_walker_catches_an_undeclared_route(hub: Hub) -> None:
    app = create_app(hub=hub, background=False)
    extra = APIRouter(prefix="/api/v1/extra")

    @extra.get("/open")
    def forgotten() -> dict[str, str]:
        return {}

    @extra.get("/declared", dependencies=[Depends(require_role(Role.clinician))])
    def declared() -> dict[str, str]:
        return {}

    @extra.post("/hook", dependencies=[Depends(open_route("HMAC-signed gateway webhook"))])
    def hook() -> dict[str, str]:
        return {}

    app.include_router(extra)
    assert undeclared_api_routes(app) == ["['GET'] /api/v1/extra/open"]
