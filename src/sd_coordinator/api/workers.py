"""User API: the cluster's workers, queue depth and throughput."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Response

from sd_common.version import VERSION
from sd_coordinator.api.deps import ServicesDep, UserRoute

router = APIRouter(route_class=UserRoute, tags=["cluster"])


# GET /workers answers serialized bytes: FastAPI's validation and encoding of the returned dict
# cost far more than building it once the cluster has hundreds of nodes.
WORKERS_SCHEMA = {"type": "object", "additionalProperties": {"type": "object"}}


@router.get(
    "/workers",
    response_class=Response,
    responses={
        200: {
            "description": "Workers by name",
            "content": {"application/json": {"schema": WORKERS_SCHEMA}},
        }
    },
)
async def workers(services: ServicesDep) -> Response:
    """Every known worker by name, with live resources and `alive`."""
    return Response(orjson.dumps(services.registry.snapshot()), media_type="application/json")


@router.get("/cluster")
async def cluster(services: ServicesDep) -> dict[str, Any]:
    """The cluster in counts, the same size for 3 workers or 3 000: workers by status, how
    many consume the queue and their cores, queue depth and tasks per second."""
    tally = services.registry.tally()
    return {
        "workers": tally.workers,
        "by_status": tally.by_status,
        "consuming": tally.consuming,
        "consuming_cpus": tally.consuming_cpus,
        "queue_size": await services.broker.pending(),
        "tps": round(services.rates.rate(), 3),
    }


@router.get("/queue_size")
async def queue_size(services: ServicesDep) -> dict[str, int]:
    """Ready messages waiting in the work queue."""
    return {"pending_tasks": await services.broker.pending()}


@router.get("/tps")
async def tps(services: ServicesDep) -> dict[str, float]:
    """Tasks completed per second, cluster-wide, over the last 5 s."""
    return {"tps": round(services.rates.rate(), 3)}


@router.get("/health", tags=["cluster"])
async def health(services: ServicesDep) -> dict[str, Any]:
    """Liveness and mode of the coordinator."""
    s = services.settings
    return {
        "status": "ok",
        "mode": "embedded" if s.embedded else "rabbitmq",
        "queue": s.queue_name,
        "workers_alive": services.registry.alive_count(),
        "version": VERSION,
    }
