"""User API: result files and original inputs."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from sd_common.result_names import result_relpath
from sd_coordinator.api.deps import BrowserLoadRoute, ServicesDep
from sd_coordinator.api.files import stored_file
from sd_coordinator.errors import NotFound, Unavailable
from sd_coordinator.store import TaskView
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
