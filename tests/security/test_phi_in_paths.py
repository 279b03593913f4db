"""PHI-like identifiers in every route's path, query and body come back nowhere (issue 10 item 4).

Every ``/api/v1`` operation of the OpenAPI document is called with distinctive MRN-like values in
each path parameter, query parameter and string body field — once in the shape of a hub
reference (reaches the handler: 404s, refusals) and once outside it (FastAPI's own 422). The hub
runs on a real socket at DEBUG with uvicorn's INFO access log switched on, as a plain uvicorn run
would have it. Then the values are searched for in every response body, every log line (the
rotating file and stderr), metrics and every audit row. Before the fix, 404s said
``no patient 'MRN-…'``, FastAPI's 422 echoed ``input``, uvicorn's access line printed the path
and ``phi.access`` stored the raw path text as resource ids.
"""

from __future__ import annotations

import http.client
import itertools
import json
from typing import Any
from urllib.parse import quote, urlencode

from tests.leaks import LeakHarness
from tests.support import make_tenant
from vitalbridge.app import create_app
from vitalbridge.servers import ServerThread

_counter = itertools.count()
_issued: list[str] = []


def _phi(shaped: bool) -> str:
    """A fresh MRN-like value; ``shaped`` ones match the hub's reference pattern."""
    n = next(_counter)
    core = f"Mrn{n:03d}Zqx"
    _issued.append(core)
    return f"{core}-4417" if shaped else f"{core}, Quackenbush"


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        resolved: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        return resolved
    return schema


def _body(spec: dict[str, Any], operation: dict[str, Any], shaped: bool) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    schema = _resolve(spec, content.get("schema", {}))
    body: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        kind = _resolve(spec, prop).get("type")
        # Strings get a value, lists a list of one, numbers a string (a type error to report).
        body[name] = [_phi(shaped)] if kind == "array" else _phi(shaped)
    return body


def _calls(spec: dict[str, Any], shaped: bool) -> list[tuple[str, str, bytes | None]]:
    calls = []
    for path, item in spec["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            concrete = path
            query: dict[str, str] = {}
            for param in operation.get("parameters", []):
                if param["in"] == "path":
                    concrete = concrete.replace("{" + param["name"] + "}", quote(_phi(shaped), safe=""))
                elif param["in"] == "query":
                    query[param["name"]] = _phi(shaped)
            url = concrete + ("?" + urlencode(query) if query else "")
            body = _body(spec, operation, shaped)
            calls.append((method.upper(), url, json.dumps(body).encode() if body is not None else None))
    return calls


def test_phi_like_identifiers_are_echoed_logged_or_audited_nowhere(leak_harness: LeakHarness) -> None:
    hub = leak_harness.hub
    tenant = make_tenant(hub, "Paths Org")
    app = create_app(hub=hub, background=False)
    spec = app.openapi()
    calls = _calls(spec, shaped=True) + _calls(spec, shaped=False)
    assert len(calls) > 80
    answers: list[tuple[str, str, int, str]] = []
    with ServerThread(app, log_level="info") as url:
        host, port = url.removeprefix("http://").split(":")
        # http.client logs nothing itself: what is searched is what the hub emitted.
        for method, target, body in calls:
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            headers = {**{"Authorization": f"Bearer {tenant.token}"}, "Content-Type": "application/json"}
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            answers.append((method, target, resp.status, resp.read().decode("utf-8", "replace")))
            conn.close()

    echoed = [(m, t, s) for m, t, s, text in answers for v in _issued if v.lower() in text.lower()]
    assert not echoed, f"error bodies repeat the identifier they were given: {echoed[:5]}"
    assert not [a for a in answers if a[2] >= 500], [a[:3] for a in answers if a[2] >= 500][:5]
    # The run was real: handlers answered 404 for unknown refs and 422 for malformed ones, and
    # the access log named route templates.
    statuses = {s for _m, _t, s, _ in answers}
    assert {404, 422} <= statuses
    access = [line for line in leak_harness.log_lines() if line.get("event") == "http.access"]
    assert len(access) >= len(calls)
    assert {"GET", "/api/v1/patients/{patient_id}", 404} <= {
        v for line in access for v in (line["method"], line["route"], line["status"])
    }
    leak_harness.assert_no_leak(_issued)
