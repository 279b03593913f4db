"""Benchmarks run offline: nothing they register needs DNS.

A practice must have an EHR URL even when a benchmark never delivers to it (``bench.ingest``,
``bench.billing_report``). A public host name there made the hub resolve it when the practice
was registered, so a machine without DNS could not run the benchmark. These loopback URLs point
at the discard port, which nothing calls; benchmarks that deliver use the sandbox EHR on
loopback with ``VB_ALLOW_PRIVATE_URLS``. ``tests/test_bench_offline.py`` keeps it that way.
"""

from __future__ import annotations

UNUSED_EHR = "http://127.0.0.1:9"
UNUSED_FHIR_BASE = f"{UNUSED_EHR}/fhir/r4/BENCH"
UNUSED_TOKEN_URL = f"{UNUSED_EHR}/oauth/token"
