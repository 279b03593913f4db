"""Tenant isolation (SPEC §2): organization B's admin can reach none of organization A's objects.

The operations come from the hub's own OpenAPI document, so a new route is covered the day it is
added; a route this test cannot seed fails it with instructions (``isolation_seeders``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tests.security.isolation_seeders import (
    BODY_SEEDERS,
    CUSTOM_PROBES,
    PATH_PARAM_KINDS,
    QUERY_PARAM_KINDS,
    World,
    seed_organization_a,
)
from tests.support import api_client, make_tenant
from vitalbridge.runtime import Hub

METHODS = ("get", "post", "put", "patch", "delete")
REFUSED = {403, 404}
SEEDER_HELP = "add it in tests/security/isolation_seeders.py"


def _operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    ops = []
    for path, item in openapi["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method in METHODS:
            if method in item:
                ops.append((method.upper(), path, item[method]))
    return ops


def _leaks(text: str, world: World) -> list[str]:
    return [s for s in world.a_strings() if s in text]


def _probe(client: httpx.Client, world: World, method: str, path: str, op: dict[str, Any]) -> list[str]:
    """Returns problems (empty when B is properly kept out)."""
    key = (method, path)
    if key in CUSTOM_PROBES:
        CUSTOM_PROBES[key](client, world)
        return []
    problems: list[str] = []
    url = path
    path_params = re.findall(r"{([^}]+)}", path)
    for name in path_params:
        kind = PATH_PARAM_KINDS.get(name)
        if kind is None or kind not in world.ids:
            return [f"{method} {path}: no seeder for path parameter {name!r}; {SEEDER_HELP}"]
        url = url.replace("{" + name + "}", world.ids[kind])
    query: dict[str, str] = {}
    for param in op.get("parameters", []):
        if param.get("in") != "query":
            continue
        kind = QUERY_PARAM_KINDS.get(param["name"])
        if kind is not None and kind in world.ids:
            query[param["name"]] = world.ids[kind]
        elif param.get("required"):
            return [f"{method} {path}: no seeder for required query parameter {param['name']!r}; {SEEDER_HELP}"]
    body: dict[str, Any] | None = None
    if "requestBody" in op:
        seeder = BODY_SEEDERS.get(key)
        if seeder is None:
            return [f"{method} {path}: no body seeder for this operation; {SEEDER_HELP}"]
        body = seeder(world)
    resp = client.request(method, url, params=query, json=body, headers=world.b_headers)
    references_a = bool(path_params) or any(s in json.dumps(body or {}) for s in world.ids.values())
    if references_a:
        if resp.status_code not in REFUSED and not (resp.status_code == 422 and not path_params):
            problems.append(f"{method} {url}: B got {resp.status_code} on A's object (expected 403/404)")
    elif resp.status_code >= 500:
        problems.append(f"{method} {path}: server error {resp.status_code}")
    # An error echoing what B itself sent is no leak; anything else of A's is.
    sent = url + json.dumps(query) + json.dumps(body or {})
    leaked = [s for s in _leaks(resp.text, world) if s not in sent]
    if leaked:
        problems.append(f"{method} {path}: B's response reveals A's {leaked}")
    return problems


def test_organization_b_cannot_reach_organization_a(hub: Hub) -> None:
    a = make_tenant(hub, "Isolation A")
    b = make_tenant(hub, "Isolation B")
    world = World(a_headers=a.headers, b_headers=b.headers)
    with api_client(hub) as client:
        seed_organization_a(hub, client, world)
        before = {p: client.get(p, headers=a.headers).json() for p in ("/api/v1/practices/", "/api/v1/users/")}
        ops = _operations(client.get("/openapi.json").json())
        assert ops, "the OpenAPI document lists no /api/v1 operations"
        problems: list[str] = []
        for method, path, op in ops:
            problems += _probe(client, world, method, path, op)
        assert not problems, "\n".join(problems)
        # Nothing B did changed what A sees, and A's token still works (B's DELETE was refused).
        for p, listed in before.items():
            assert client.get(p, headers=a.headers).json() == listed
        tokens = {t["id"]: t for t in client.get("/api/v1/tokens/", headers=a.headers).json()}
        assert tokens[world.ids["token"]]["revoked_at"] is None
    covered = {(m, p) for m, p, _ in ops}
    assert ("DELETE", "/api/v1/tokens/{token_id}") in covered


def test_an_unseedable_route_fails_with_instructions(hub: Hub) -> None:
    """The probe must fail, not skip, on a route it cannot seed."""
    world = World(a_headers={}, b_headers={})
    problems = _probe(
        httpx.Client(base_url="http://127.0.0.1:9"),
        world,
        "GET",
        "/api/v1/gizmos/{gizmo_id}",
        {"parameters": [{"in": "path", "name": "gizmo_id", "required": True}]},
    )
    assert problems
    assert "no seeder for path parameter 'gizmo_id'" in problems[0]
    assert SEEDER_HELP in problems[0]
    problems = _probe(
        httpx.Client(base_url="http://127.0.0.1:9"), world, "POST", "/api/v1/gizmos/", {"requestBody": {}}
    )
    assert problems
    assert "no body seeder" in problems[0]
