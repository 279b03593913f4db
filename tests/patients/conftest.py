"""Patients tests: the hub and the sandbox EHR on real loopback sockets (``patients_env``).

Built on the SMART test environment (tests/smart/conftest.py): a tenant whose practice is wired
to a sandbox that knows the hub as a backend-services client. The sandbox here serves more
patients and smaller search pages than the SMART default, so that paging really happens.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.smart.conftest import (  # noqa: F401 - fixtures used through smart_env
    SANDBOX_DEFAULTS,
    default_sandbox,
    hub_key_pem,
    hub_server,
    smart_env,
)

PATIENTS_SANDBOX: dict[str, Any] = {
    "patients_per_practice": 120,
    # Pages of 10 whatever _count asks, so a search for 25 follows two `next` links.
    "search_max_count": 10,
    "export_job_s": 0.0,
}


@pytest.fixture
def sandbox_options() -> dict[str, Any]:
    return dict(PATIENTS_SANDBOX)


__all__ = ["SANDBOX_DEFAULTS"]
