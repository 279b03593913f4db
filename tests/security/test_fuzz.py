"""Property-based fuzzing of the hub API from its own OpenAPI document (schemathesis).

Every operation gets valid and invalid inputs, sent to the live hub on loopback with an admin
token; any 5xx or any response that contradicts the documented schema fails the test. The
campaign is short here (``VB_FUZZ_EXAMPLES``, default 10 per operation and mode); ``make fuzz``
runs a long one.
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support import api_client, make_tenant
from vitalbridge.runtime import Hub

EXAMPLES = int(os.environ.get("VB_FUZZ_EXAMPLES", "10"))


def test_api_survives_fuzzing(hub: Hub) -> None:
    tenant = make_tenant(hub, "Fuzz Org")
    with api_client(hub) as client:
        schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
        base_url = str(client.base_url)
        failures: list[str] = []
        operations = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def exercise(case: schemathesis.Case) -> None:
                    response = case.call(base_url=base_url, headers=tenant.headers, timeout=30)
                    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

                try:
                    exercise()
                except Unsatisfiable:
                    # An operation without inputs has no invalid variant to send.
                    assert mode is GenerationMode.NEGATIVE, operation.label
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported together below
                    failures.append(f"{operation.label} ({mode.value}): {exc}")
        assert operations >= 10
        assert not failures, "\n\n".join(failures)
