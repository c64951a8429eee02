"""Live updates for the dashboard: Server-Sent Events with a cluster snapshot every second."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from sd_coordinator.api.deps import BrowserLoadRoute, ServicesDep
from sd_coordinator.snapshot import SnapshotCache

router = APIRouter(route_class=BrowserLoadRoute, tags=["cluster"])

PUSH_INTERVAL_S = 1.0


@router.get("/events", response_class=StreamingResponse)
async def events(request: Request, services: ServicesDep) -> StreamingResponse:
    """`text/event-stream` of `snapshot` events (workers, queue, tps, totals, jobs)."""
    cache = services.extras.setdefault("snapshots", SnapshotCache(services))

    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        while not services.stopping and not await request.is_disconnected():
            snapshot = await cache.get()
            yield b"event: snapshot\ndata: " + orjson.dumps(snapshot) + b"\n\n"
            await asyncio.sleep(PUSH_INTERVAL_S)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
