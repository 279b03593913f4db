"""``GET /metrics``: Prometheus exposition (SPEC §10).

The process-wide counters and histograms (readings in, EHR calls, token requests, 429s,
deliveries, delivery latency) plus the outbox depth per practice and status, counted from the
database at scrape time. Labels carry codes and opaque ids only, never PHI.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from vitalbridge.api.deps import HubDep, open_route
from vitalbridge.delivery.metrics import QueueDepthCollector

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    dependencies=[Depends(open_route("Prometheus scrape: counters and opaque ids only, no PHI"))],
    response_class=Response,
)
def metrics(hub: HubDep) -> Response:
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(QueueDepthCollector(hub))
    body = generate_latest(REGISTRY) + generate_latest(scrape)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
