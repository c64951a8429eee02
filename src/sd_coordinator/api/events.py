"""Live updates for the dashboard: Server-Sent Events, a cluster snapshot then its changes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from sd_coordinator.api.deps import BrowserLoadRoute, ServicesDep
from sd_coordinator.errors import Unavailable
from sd_coordinator.snapshot import SnapshotCache

router = APIRouter(route_class=BrowserLoadRoute, tags=["cluster"])

PUSH_INTERVAL_S = 1.0


@router.get("/events", response_class=StreamingResponse)
async def events(request: Request, services: ServicesDep) -> StreamingResponse:
    """`text/event-stream`: one `snapshot` event (workers, queue, tps, totals, jobs), then every
    second a `delta` event with what changed (`workers`: changed fields by name, `gone`: names
    removed, and any other key of the snapshot whose value changed)."""
    cache = services.extras.setdefault("snapshots", SnapshotCache(services))
    streams: StreamCount = services.extras.setdefault("event_streams", StreamCount())
    limit = services.settings.max_event_streams
    if streams.live >= limit:
        raise Unavailable(
            f"too many live event streams ({limit}); close a dashboard tab, or raise "
            "MAX_EVENT_STREAMS"
        )
    streams.live += 1

    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        sent: dict[str, Any] | None = None
        while not services.stopping.is_set() and not await request.is_disconnected():
            snapshot = await cache.get()
            if sent is None:
                yield b"event: snapshot\ndata: " + orjson.dumps(snapshot) + b"\n\n"
            elif snapshot is not sent:
                delta = cache.delta(sent, snapshot)
                yield b"event: delta\ndata: " + orjson.dumps(delta) + b"\n\n"
            sent = snapshot
            with contextlib.suppress(TimeoutError):  # the next push, or the server stopping
                await asyncio.wait_for(services.stopping.wait(), PUSH_INTERVAL_S)

    return CountedStream(
        streams,
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


class StreamCount:
    """Live event streams of this app."""

    live = 0


class CountedStream(StreamingResponse):
    """A streaming answer that gives its slot back however it ends (done, hung up, failed)."""

    def __init__(self, count: StreamCount, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.count.live -= 1
