"""User API: result files and original inputs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from sd_common import result_frames
from sd_common.result_names import result_relpath
from sd_coordinator.api.deps import BrowserLoadRoute, ServicesDep
from sd_coordinator.api.files import stored_file
from sd_coordinator.errors import NotFound, Unavailable
from sd_coordinator.store import FINISHED, TaskView
from sd_coordinator.zipstream import ZipStream

router = APIRouter(route_class=BrowserLoadRoute, tags=["results"])

IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def sniff_image_type(head: bytes) -> str:
    """Media type of a stored input (inputs passed the image check at upload)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((t for magic, t in IMAGE_MAGIC if head.startswith(magic)), "image/octet-stream")


@router.get(
    "/result/{filename}",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/png": {}}}},
)
async def result(filename: str, services: ServicesDep) -> StreamingResponse:
    """A stored result image (PNG): only a finished task's recorded result."""
    path = services.blobs.result_path(filename)
    if path is None or not await services.store.is_stored_result(filename):
        raise NotFound(f"no result named {filename!r}")
    return await stored_file(
        path,
        "image/png",
        f"result named {filename!r}",
        {"Content-Disposition": f'inline; filename="{filename}"'},
    )


@router.get("/inputs/{sha256}", response_class=StreamingResponse)
async def original(sha256: str, services: ServicesDep) -> StreamingResponse:
    """An uploaded original, by its sha256 (the dashboard's "before" preview)."""
    return await stored_file(
        services.blobs.input_path(sha256), sniff_image_type, f"input {sha256!r}"
    )


def _zip_name(task: TaskView, kind: str) -> str:
    if kind == "files":  # a growing job's names are relative paths: keep them
        return result_relpath(task.filename or "result", task.copy)
    stem = Path(task.filename or "result").stem or "result"
    return f"{task.seq + 1:04d}_{stem}.png"


class ZipSlots:
    """How many zip downloads run at once: each holds a thread hop and the disk busy."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.running = 0

    def take(self) -> None:
        """Take a slot, or 503 when all are taken."""
        if self.running >= self.most:
            raise Unavailable(
                f"{self.running} zip downloads are running, the most at once "
                f"(ZIP_DOWNLOADS_MAX={self.most}); try again in a moment"
            )
        self.running += 1

    def give_back(self) -> None:
        self.running -= 1


ZIP_PAGE = 1000


@router.get("/jobs/{job_id}/zip", response_class=StreamingResponse)
async def job_zip(job_id: str, services: ServicesDep) -> StreamingResponse:
    """Every stored result of a job in one zip file, streamed as it is written."""
    job = await services.store.job_summary(job_id)
    if job is None:
        raise NotFound(f"unknown job {job_id}")
    store, blobs = services.store, services.blobs
    first = await store.tasks_page(job_id, state="done", limit=ZIP_PAGE)
    if not first.tasks:
        raise NotFound(f"job {job_id} has no results yet")
    slots: ZipSlots = services.extras.setdefault(
        "zip_slots", ZipSlots(services.settings.zip_downloads_max)
    )
    slots.take()

    async def stream() -> AsyncIterator[bytes]:
        archive = ZipStream()
        page = first
        while True:
            files = [
                (blobs.results_dir / t.result, _zip_name(t, job.kind))
                for t in page.tasks
                if t.result and blobs.result_path(t.result)
            ]
            chunks = archive.entries(files)
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                yield chunk
            if page.next is None:
                break
            page = await store.tasks_page(job_id, state="done", limit=ZIP_PAGE, cursor=page.next)
        tail = archive.finish()
        while (chunk := await asyncio.to_thread(next, tail, None)) is not None:
            yield chunk

    body = stream()
    # The slot is given back when the stream is dropped: finished, failed, or never started
    # because the client went away first (an unstarted generator runs no `finally`).
    weakref.finalize(body, slots.give_back)
    return StreamingResponse(
        body,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="job-{job_id[:8]}.zip"'},
    )


# The longest a results request waits (a long poll). A stopping server ends the wait at once
# (`Services.request_stop`); the cap also stays under uvicorn's graceful-shutdown timeout.
MAX_WAIT_S = 4
RESULTS_PAGE_BYTES = 8 * 1024 * 1024  # of result images in one answer (the first always goes)
RESULTS_READ_BYTES = 4 * 1024 * 1024  # of result images read per thread hop


@router.get(
    "/jobs/{job_id}/results",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {result_frames.MEDIA_TYPE: {}},
            "headers": {
                "X-Next-Cursor": {
                    "description": "the cursor to ask from next (the last finished_seq sent)",
                    "schema": {"type": "integer"},
                }
            },
        }
    },
)
async def job_results(
    job_id: str,
    services: ServicesDep,
    cursor: Annotated[
        int, Query(ge=0, description="the last finished_seq already received (0: from the start)")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="tasks at most")] = 200,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_S,
            description="seconds to wait for a task to finish when none has since `cursor` "
            "and the job is not finished (0: answer at once)",
        ),
    ] = 0,
) -> StreamingResponse:
    """The job's tasks that finished after `cursor`, in the order they finished, each with its
    result image: many results in one request, for a client that saves them as they come.

    The body is frames: a 4-byte big-endian length, the task as JSON (as GET
    /jobs/{job_id}/tasks lists it, plus `size` when its PNG follows), then `size` bytes of PNG.
    At most `limit` tasks and about 8 MB of images; `X-Next-Cursor` says where to ask from next
    (the same cursor when nothing new finished). With `wait`, an answer that would be empty
    waits until a task finishes or the job does (a long poll), so results come as they are
    stored instead of at the client's next poll."""
    store = services.store
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        finish = store.next_finish()  # taken before the reads: nothing stored after is missed
        job = await store.job_summary(job_id)
        if job is None:
            raise NotFound(f"unknown job {job_id}")
        page = await store.tasks_page(job_id, limit=limit, cursor=cursor, order="finished")
        remaining = deadline - asyncio.get_running_loop().time()
        if page.tasks or job.state in FINISHED or remaining <= 0 or services.stopping.is_set():
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finish.wait(), remaining)
    blobs = services.blobs

    def sized() -> list[tuple[TaskView, str | None, int]]:
        """The page's tasks up to RESULTS_PAGE_BYTES of images, each with its file and size."""
        out: list[tuple[TaskView, str | None, int]] = []
        total = 0
        for task in page.tasks:
            path = blobs.result_path(task.result) if task.result and task.state == "done" else None
            size = os.stat(path).st_size if path is not None else 0
            if out and total + size > RESULTS_PAGE_BYTES:
                break
            out.append((task, str(path) if path is not None else None, size))
            total += size
        return out

    tasks = await asyncio.to_thread(sized)
    last = next((t.finished_seq for t, _, _ in reversed(tasks) if t.finished_seq), cursor)

    def read(batch: list[tuple[TaskView, str | None, int]]) -> bytes:
        parts: list[bytes] = []
        for task, path, size in batch:
            header, png = task.as_json(), b""
            if path is not None:
                try:
                    with open(path, "rb") as f:
                        png = f.read(size)
                    header["size"] = len(png)
                except FileNotFoundError:  # removed meanwhile: the task comes without it
                    pass
            raw = orjson.dumps(header)
            parts += (result_frames.LENGTH.pack(len(raw)), raw, png)
        return b"".join(parts)

    async def stream() -> AsyncIterator[bytes]:
        start = 0
        while start < len(tasks):
            end, size = start, 0
            while end < len(tasks) and (end == start or size + tasks[end][2] <= RESULTS_READ_BYTES):
                size += tasks[end][2]
                end += 1
            yield await asyncio.to_thread(read, tasks[start:end])
            start = end

    return StreamingResponse(
        stream(), media_type=result_frames.MEDIA_TYPE, headers={"X-Next-Cursor": str(last)}
    )
