"""Poison JSON bodies never crash an API route, at DEBUG logging too (issue 10 item 5, the class).

Every ``/api/v1`` operation that takes a JSON body gets nesting past the parser's recursion,
a 5,000-digit number, NaN/Infinity and an out-of-range float, on a real socket with the hub
logging at DEBUG (whose body logger once raised ``RecursionError`` and dropped the connection).
None may answer 5xx: a 500 reads as "retry" to a machine client. Before the value-free 422
handler, a ``NaN`` that reached a field error was echoed in ``input`` and the 422 itself failed
to encode (500). Gateway webhooks are covered in detail by tests/devices/test_poison_payloads.py.
"""

from __future__ import annotations

import http.client

from tests.leaks import LeakHarness
from tests.support import make_tenant
from vitalbridge.app import create_app
from vitalbridge.servers import ServerThread

BODIES = [
    b"[" * 30000 + b"]" * 30000,
    b'{"a":' * 20000 + b"1" + b"}" * 20000,
    b'{"patient_ids": [' + b"9" * 5000 + b"]}",
    b'{"patient_ids": [NaN], "name": NaN, "note": Infinity}',
    b'{"patient_ids": [1e999], "name": -Infinity}',
]


def test_no_json_route_answers_5xx_to_poison_bodies(leak_harness: LeakHarness) -> None:
    hub = leak_harness.hub
    tenant = make_tenant(hub, "Poison Org")
    app = create_app(hub=hub, background=False)
    spec = app.openapi()
    targets = [
        (method.upper(), path.replace("{", "").replace("}", ""))
        for path, item in spec["paths"].items()
        if path.startswith("/api/v1")
        for method, operation in item.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    assert len(targets) > 15
    crashed = []
    with ServerThread(app) as url:
        host, port = url.removeprefix("http://").split(":")
        for method, path in targets:
            for body in BODIES:
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                conn.request(
                    method,
                    path,
                    body=body,
                    headers={"Authorization": f"Bearer {tenant.token}", "Content-Type": "application/json"},
                )
                status = conn.getresponse().status
                conn.close()
                if status >= 500:
                    crashed.append((method, path, body[:24], status))
    assert not crashed, crashed
    exchanges = [line for line in leak_harness.log_lines() if line.get("event") == "http.exchange"]
    assert len(exchanges) >= len(targets) * len(BODIES)
