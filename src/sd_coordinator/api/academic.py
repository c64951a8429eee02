"""User API of the academic records: profesores, grupos, and their changes as a live stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from sd_coordinator.api import grupos, profesores
from sd_coordinator.api.academic_deps import AcademicDep, AcademicRoute
from sd_coordinator.api.deps import ServicesDep

KEEPALIVE_S = 15.0

router = APIRouter()
router.include_router(profesores.router)
router.include_router(grupos.router)

events_router = APIRouter(route_class=AcademicRoute, tags=["académico: eventos"])


@events_router.get("/academico/events", response_class=StreamingResponse)
async def academic_events(
    request: Request, services: ServicesDep, academic: AcademicDep
) -> StreamingResponse:
    """`text/event-stream` of `change` events (`profesor.created`, `grupo.updated`, …) as the
    academic service publishes them on its topic exchange."""

    async def stream() -> AsyncIterator[bytes]:
        with academic.hub.subscribe() as queue:
            yield b"retry: 2000\n\nevent: ready\ndata: {}\n\n"
            while not services.stopping.is_set() and not await request.is_disconnected():
                event = await services.unless_stopping(queue.get(), KEEPALIVE_S)
                if event is None:
                    yield b": keep-alive\n\n"
                    continue
                yield b"event: change\ndata: " + orjson.dumps(event) + b"\n\n"

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


router.include_router(events_router)
