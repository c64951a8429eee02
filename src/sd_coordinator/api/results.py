"""User API: result files and original inputs."""

from __future__ import annotations

import asyncio
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from sd_coordinator.api.deps import BrowserLoadRoute, ServicesDep
from sd_coordinator.api.files import stored_file
from sd_coordinator.errors import NotFound

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


@router.get("/result/{filename}", response_class=StreamingResponse,
            responses={200: {"content": {"image/png": {}}}})  # fmt: skip
async def result(filename: str, services: ServicesDep) -> StreamingResponse:
    """A stored result image (PNG): only a finished task's recorded result."""
    path = services.blobs.result_path(filename)
    if path is None or not await services.store.is_stored_result(filename):
        raise NotFound(f"no result named {filename!r}")
    return await stored_file(path, "image/png", f"result named {filename!r}",
                             {"Content-Disposition": f'inline; filename="{filename}"'})  # fmt: skip


@router.get("/inputs/{sha256}", response_class=StreamingResponse)
async def original(sha256: str, services: ServicesDep) -> StreamingResponse:
    """An uploaded original, by its sha256 (the dashboard's "before" preview)."""
    return await stored_file(services.blobs.input_path(sha256), sniff_image_type,
                             f"input {sha256!r}")  # fmt: skip


def _zip_name(index: int, task: dict[str, Any]) -> str:
    stem = Path(task.get("filename") or "result").stem or "result"
    return f"{index:04d}_{stem}.png"


def _build_zip(files: list[tuple[Path, str]]) -> tempfile.SpooledTemporaryFile[bytes]:
    spool = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)
    # PNG is already compressed: store, don't deflate again.
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as archive:
        for path, name in files:
            archive.write(path, name)
    spool.seek(0)
    return spool


def _chunks(spool: tempfile.SpooledTemporaryFile[bytes]) -> Iterator[bytes]:
    with spool:
        while chunk := spool.read(1024 * 1024):
            yield chunk


@router.get("/jobs/{job_id}/zip", response_class=StreamingResponse)
async def job_zip(job_id: str, services: ServicesDep) -> StreamingResponse:
    """Every stored result of a job in one zip file."""
    job = await services.store.get_job(job_id)
    if job is None:
        raise NotFound(f"unknown job {job_id}")
    files = []
    for index, task in enumerate(job["tasks"], start=1):
        path = services.blobs.result_path(task["result"]) if task["result"] else None
        if path is not None:
            files.append((path, _zip_name(index, task)))
    if not files:
        raise NotFound(f"job {job_id} has no results yet")
    spool = await asyncio.to_thread(_build_zip, files)
    return StreamingResponse(
        _chunks(spool),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="job-{job_id[:8]}.zip"'},
    )
