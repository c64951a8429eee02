"""Worker endpoints (CLUSTER_TOKEN): registration, reports, inputs and results."""

from __future__ import annotations

import ipaddress
import logging
import time
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import psutil
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from sd_common import result_frames
from sd_common.messages import (
    ID,
    NAME,
    IngestAnswer,
    OutcomeBatch,
    ReportAnswer,
    TaskOutcome,
    WorkerHello,
    Working,
)
from sd_common.result_frames import ResultHeader
from sd_common.version import VERSION, release_line
from sd_coordinator.api.deps import ServicesDep, WorkerRoute
from sd_coordinator.api.files import stored_file
from sd_coordinator.blobs import PNG_SIGNATURE, Blobs
from sd_coordinator.errors import Invalid, ServiceError, TooLarge
from sd_coordinator.ingest import ImageResult
from sd_coordinator.lifespan import Services

router = APIRouter(route_class=WorkerRoute, tags=["workers (internal)"])
log = logging.getLogger("sd.coordinator.workers")

UNFINISHED_MAX_AGE_S = 0.5
# POST /result-images spools its results to files every SPOOL_BYTES of them.
SPOOL_BYTES = 4 * 1024 * 1024
# A JSON outcome sent to POST /result-image (custom outputs, failures).
OUTCOME_BYTES = 1024 * 1024


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
            hello.name, hello.version or "unknown (older)", VERSION,
        )  # fmt: skip
    s = services.settings
    return {"session": worker.session, "queue": s.queue_name,
            "report_interval_s": s.report_interval_s,
            "storage": services.blobs.storage_offer()}  # fmt: skip


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
    return ReportAnswer(cancelled_jobs=services.jobs.cancelled.recent(),
                        settled=await rescuer.settled(hello.held) if rescuer else [],
                        others_consuming=registry.others_consuming(hello.name),
                        unfinished_tasks=await unfinished_tasks(services))  # fmt: skip


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
    return {"peer": request.client.host if request.client else "",
            "server_time": time.time(), "queue": services.settings.queue_name,
            "name_in_use": name is not None and services.registry.is_live(name)}  # fmt: skip


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
    return await stored_file(services.blobs.input_path(sha256), "application/octet-stream",
                             f"input {sha256!r}")  # fmt: skip


@router.post(
    "/result-image",
    response_model=IngestAnswer,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": TaskOutcome.model_json_schema()},
    }}},
)  # fmt: skip
async def result_image(
    request: Request,
    services: ServicesDep,
    task_id: Annotated[str | None, Query(pattern=ID)] = None,
    worker: Annotated[str | None, Query(pattern=NAME)] = None,
    duration_s: Annotated[float, Query(ge=0, le=86_400)] = 0,
) -> IngestAnswer:
    """A task's result as the raw PNG body (`?task_id=&worker=&duration_s=`), or a JSON
    failure report. The image is spooled to a file as it streams in, never held whole."""
    if request.headers.get("content-type", "").startswith("application/json"):
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > OUTCOME_BYTES:
                raise TooLarge(f"a JSON outcome may be at most {OUTCOME_BYTES} bytes")
        try:
            outcome = TaskOutcome.model_validate_json(body)
        except ValidationError as exc:
            raise Invalid(f"bad outcome: {exc.errors()[0]['msg']}") from exc
        return await services.ingestor.outcome(outcome)
    if task_id is None or worker is None:
        raise Invalid("a result image needs the query parameters task_id and worker")
    path, head = await services.blobs.spool_stream(request.stream())
    try:
        # What is not a PNG keeps only its first bytes: enough for the answer that refuses it.
        png: Path | bytes = path if head == PNG_SIGNATURE else head
        return await services.ingestor.image_result(task_id, worker, png, duration_s)
    finally:
        await services.blobs.discard([path])  # a stored one was renamed into place


@router.post(
    "/result-images",
    # Documented as plain binary, so any OpenAPI tool can send one; workers label the same
    # bytes with result_frames.MEDIA_TYPE, and the body is read the same whatever its type.
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/octet-stream": {"schema": {
            "type": "string", "format": "binary",
            "description": "frames: a 4-byte big-endian header length, a JSON header "
            "{task_id, worker, size, duration_s}, then `size` bytes of PNG; repeated "
            f"(also accepted as {result_frames.MEDIA_TYPE})",
        }}}}},
)  # fmt: skip
async def result_images(request: Request, services: ServicesDep) -> dict[str, list[dict[str, Any]]]:
    """Several result images in one raw body (see sd_common.result_frames); one answer each.

    The body is read as it streams: every few MB of results are spooled to files, so a request
    holds little memory however large its body. Nothing is stored before the whole body has
    been read and found well formed; a malformed one leaves no trace.
    """
    blobs = services.blobs
    reader = result_frames.FrameReader(
        result_frames.max_result_bytes(services.settings.max_image_pixels)
    )
    results: list[ImageResult] = []
    held: list[tuple[ResultHeader, bytes]] = []
    held_bytes = 0
    try:
        try:
            async for chunk in request.stream():
                for frame in reader.feed(chunk):
                    held.append(frame)
                    held_bytes += len(frame[1])
                if held_bytes >= SPOOL_BYTES:
                    results += await _spooled(blobs, held)
                    held, held_bytes = [], 0
            reader.close()
        except result_frames.FrameError as exc:
            raise Invalid(f"bad result frames: {exc}") from exc
        results += await _spooled(blobs, held)
        answers = await services.ingestor.image_results(results)
    finally:
        # Stored ones were renamed into place; the rest (duplicates, refusals, a body cut
        # short) go.
        await blobs.discard([r.png for r in results if isinstance(r.png, Path)])
    return {"answers": [_answer_json(r.task_id, a) for r, a in zip(results, answers, strict=True)]}


async def _spooled(blobs: Blobs, frames: list[tuple[ResultHeader, bytes]]) -> list[ImageResult]:
    """The frames as ImageResults, each PNG spooled to a file. What is not a PNG keeps only its
    first bytes: enough for the answer that refuses it."""
    signature = len(PNG_SIGNATURE)
    pngs = [png[:signature] == PNG_SIGNATURE for _, png in frames]
    paths = iter(await blobs.spool_results([png for (_, png), ok in zip(frames, pngs, strict=True)
                                            if ok]))  # fmt: skip
    return [
        ImageResult(h.task_id, h.worker, next(paths) if ok else png[:signature], h.duration_s)
        for (h, png), ok in zip(frames, pngs, strict=True)
    ]


@router.post("/results")
async def results(batch: OutcomeBatch, services: ServicesDep) -> dict[str, list[dict[str, Any]]]:
    """Several JSON outcomes at once (custom task outputs, failures); one answer each."""
    answers = await services.ingestor.outcomes(batch.outcomes)
    return {
        "answers": [
            _answer_json(o.task_id, a) for o, a in zip(batch.outcomes, answers, strict=True)
        ]
    }


def _answer_json(task_id: str, answer: IngestAnswer | ServiceError) -> dict[str, Any]:
    if isinstance(answer, ServiceError):
        return {"task_id": task_id, "error": answer.detail, "status": answer.status_code}
    return answer.model_dump()
