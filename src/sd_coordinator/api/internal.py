"""Worker endpoints (CLUSTER_TOKEN): registration, reports, inputs and results."""

from __future__ import annotations

import ipaddress
import logging
import time
from functools import lru_cache
from typing import Annotated, Any

import psutil
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from sd_common import result_frames
from sd_common.messages import (
    NAME,
    IngestAnswer,
    IngestAnswers,
    ReportAnswer,
    WorkerHello,
    Working,
)
from sd_common.result_frames import ResultHeader
from sd_common.version import VERSION, release_line
from sd_coordinator.api.deps import ServicesDep, WorkerRoute
from sd_coordinator.api.files import stored_file
from sd_coordinator.errors import Invalid, ServiceError, TooLarge
from sd_coordinator.lifespan import Services
from sd_coordinator.result_body import ResultBody

router = APIRouter(route_class=WorkerRoute, tags=["workers (internal)"])
log = logging.getLogger("sd.coordinator.workers")

UNFINISHED_MAX_AGE_S = 0.5


@lru_cache(maxsize=1)
def own_addresses() -> frozenset[str]:
    """This machine's addresses, to badge a worker running beside the coordinator."""
    return frozenset(
        a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs
    )


def is_local(request: Request, hello: WorkerHello) -> bool:
    """A worker on the coordinator's own machine (loopback peer or one of our addresses)."""
    peer = request.client.host if request.client else ""
    try:
        if ipaddress.ip_address(peer).is_loopback:
            return True
    except ValueError:
        pass
    return peer in own_addresses() or hello.ip in own_addresses()


@router.post("/register")
async def register(hello: WorkerHello, request: Request, services: ServicesDep) -> dict[str, Any]:
    """A worker starts: record it (409 if a live worker holds the name)."""
    worker = services.registry.register(hello, is_local=is_local(request, hello))
    if release_line(hello.version) != release_line(VERSION):
        log.warning(
            "worker %r runs version %s and this coordinator %s: install the same release on both",
            hello.name,
            hello.version or "unknown (older)",
            VERSION,
        )
    s = services.settings
    return {
        "session": worker.session,
        "queue": s.queue_name,
        "report_interval_s": s.report_interval_s,
        "storage": services.blobs.storage_offer(),
    }


@router.post("/report", response_model=ReportAnswer)
async def report(hello: WorkerHello, request: Request, services: ServicesDep) -> ReportAnswer:
    """Periodic resources and state of a registered worker (404: register again); answers the
    recently cancelled jobs, whose tasks the worker skips, the held tasks already finished
    elsewhere, which it acks unrun, and its look at the cluster, the same size however large
    the cluster: the other workers consuming the queue and their cores, and the unfinished
    tasks."""
    registry = services.registry
    registry.report(hello, is_local=is_local(request, hello))
    rescuer = services.rescuer
    return ReportAnswer(
        cancelled_jobs=services.jobs.cancelled.recent(),
        settled=await rescuer.settled(hello.held) if rescuer else [],
        others_consuming=registry.others_consuming(hello.name),
        unfinished_tasks=await unfinished_tasks(services),
    )


async def unfinished_tasks(services: Services) -> int:
    """Tasks not yet finished over all jobs, counted at most every UNFINISHED_MAX_AGE_S
    however many workers report: with the tally of consuming workers, a worker's share of
    the whole of every job, including the part still being published."""
    cached = services.extras.get("unfinished_tasks")
    now = time.monotonic()
    if cached is None or now - cached[0] > UNFINISHED_MAX_AGE_S:
        cached = (now, await services.store.unfinished_count())
        services.extras["unfinished_tasks"] = cached
    return int(cached[1])


@router.get("/whoami")
async def whoami(
    request: Request, services: ServicesDep, name: Annotated[str | None, Query(pattern=NAME)] = None
) -> dict[str, Any]:
    """What the coordinator sees of a worker about to join (`sd-worker --check`): the address
    its requests come from, the time here, and whether a live worker already holds `name`."""
    return {
        "peer": request.client.host if request.client else "",
        "server_time": time.time(),
        "queue": services.settings.queue_name,
        "name_in_use": name is not None and services.registry.is_live(name),
    }


@router.post("/working")
async def working(update: Working, services: ServicesDep) -> dict[str, str]:
    """The worker's current task changed."""
    services.registry.working(update)
    started = dict.fromkeys(update.started)
    if update.task_id and len(update.task_id) == 32:
        started[update.task_id] = None
    if started:
        await services.store.mark_running(list(started), update.name)
    return {"status": "ok"}


@router.get("/blobs/{sha256}", response_class=StreamingResponse)
async def blob(sha256: str, services: ServicesDep) -> StreamingResponse:
    """A task's input by its sha256."""
    return await stored_file(
        services.blobs.input_path(sha256), "application/octet-stream", f"input {sha256!r}"
    )


# Documented as plain binary, so any OpenAPI tool can send one; workers label the same bytes
# with result_frames.MEDIA_TYPE, and the body is read the same whatever its type.
FRAMES_SCHEMA = {
    "type": "string",
    "format": "binary",
    "description": "frames, one per outcome: a 4-byte big-endian header length, a JSON header "
    "(`x-frame-header`: a task's outcome, with `size` when a result image follows), then `size` "
    f"bytes of PNG. At most {result_frames.MAX_FRAMES} frames and "
    f"{result_frames.HEADERS_MAX_BYTES // 1048576} MB of headers a body (also accepted as "
    f"{result_frames.MEDIA_TYPE})",
    "x-frame-header": ResultHeader.model_json_schema(),
}
FRAMES_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": FRAMES_SCHEMA}},
    }
}


@router.post(
    "/results",
    responses={200: {"model": IngestAnswers, "description": "one answer per outcome"}},
    openapi_extra=FRAMES_BODY,
)
async def results(request: Request, services: ServicesDep) -> dict[str, list[dict[str, Any]]]:
    """A batch of outcomes in one raw body (see sd_common.result_frames): result images,
    custom outputs and failures alike; one answer each, in order.

    The body is read as it streams: every few MB of result images are spooled to files, so a
    request holds little memory however large its body. Nothing is stored before the whole body
    has been read and found well formed; a malformed one leaves no trace.
    """
    body = ResultBody(
        services.blobs, result_frames.max_result_bytes(services.settings.max_image_pixels)
    )
    try:
        try:
            await body.read(request.stream())
        except result_frames.FramesTooLarge as exc:
            raise TooLarge(str(exc)) from exc
        except result_frames.FrameError as exc:
            raise Invalid(f"bad result frames: {exc}") from exc
        ingestor = services.ingestor
        images = await ingestor.image_results(body.images) if body.images else []
        outcomes = await ingestor.outcomes(body.outcomes) if body.outcomes else []
    finally:
        await body.discard()
    of_images = zip(body.images, images, strict=True)
    of_outcomes = zip(body.outcomes, outcomes, strict=True)
    answers = []
    for image in body.is_image:
        item, answer = next(of_images) if image else next(of_outcomes)
        answers.append(_answer_json(item.task_id, answer))
    return {"answers": answers}


def _answer_json(task_id: str, answer: IngestAnswer | ServiceError) -> dict[str, Any]:
    if isinstance(answer, ServiceError):
        return {"task_id": task_id, "error": answer.detail, "status": answer.status_code}
    return answer.model_dump()
