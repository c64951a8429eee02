"""GET /metrics: the coordinator's Prometheus metrics (API_TOKEN when one is set)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from sd_coordinator.api.deps import ServicesDep, UserRoute
from sd_coordinator.metrics import CONTENT_TYPE

router = APIRouter(route_class=UserRoute, tags=["cluster"])


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Tasks by state, task durations, queue depth and per-worker gauges (text format 0.0.4)."""
    try:
        queue_depth: int | None = await services.broker.pending()
    except Exception:  # broker away: scrape the rest rather than fail
        queue_depth = None
    body = services.metrics.render(
        await services.store.count_by_state(), queue_depth, services.registry.snapshot()
    )
    return Response(body, media_type=CONTENT_TYPE)
