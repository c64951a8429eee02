"""Live updates for the dashboard: Server-Sent Events, a cluster snapshot then its changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from sd_coordinator.api.deps import ServicesDep, UserRoute
from sd_coordinator.snapshot import SnapshotCache

router = APIRouter(route_class=UserRoute, tags=["cluster"])

PUSH_INTERVAL_S = 1.0


@router.get("/events", response_class=StreamingResponse)
async def events(request: Request, services: ServicesDep) -> StreamingResponse:
    """`text/event-stream`: one `snapshot` event (workers, queue, tps, totals, jobs), then every
    second a `delta` event with what changed (`workers`: changed fields by name, `gone`: names
    removed, and any other key of the snapshot whose value changed)."""
    cache = services.extras.setdefault("snapshots", SnapshotCache(services))

    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        sent: dict[str, Any] | None = None
        while not services.stopping and not await request.is_disconnected():
            snapshot = await cache.get()
            if sent is None:
                yield b"event: snapshot\ndata: " + orjson.dumps(snapshot) + b"\n\n"
            elif snapshot is not sent:
                delta = cache.delta(sent, snapshot)
                yield b"event: delta\ndata: " + orjson.dumps(delta) + b"\n\n"
            sent = snapshot
            await asyncio.sleep(PUSH_INTERVAL_S)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
