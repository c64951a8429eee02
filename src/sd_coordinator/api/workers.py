"""User API: the cluster's workers, queue depth and throughput."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from sd_common.version import VERSION
from sd_coordinator.api.deps import ServicesDep, UserRoute

router = APIRouter(route_class=UserRoute, tags=["cluster"])


@router.get("/workers")
async def workers(services: ServicesDep) -> dict[str, dict[str, Any]]:
    """Every known worker by name, with live resources and `alive`."""
    return services.registry.snapshot()


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
