"""User API: result files and original inputs."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from sd_coordinator.api.deps import ServicesDep, UserRoute
from sd_coordinator.errors import NotFound

router = APIRouter(route_class=UserRoute, tags=["results"])

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


@router.get("/result/{filename}", response_class=FileResponse)
async def result(filename: str, services: ServicesDep) -> FileResponse:
    """A stored result image (PNG)."""
    path = services.blobs.result_path(filename)
    if path is None:
        raise NotFound(f"no result named {filename!r}")
    return FileResponse(path, media_type="image/png", filename=filename,
                        content_disposition_type="inline")  # fmt: skip


@router.get("/inputs/{sha256}", response_class=FileResponse)
async def original(sha256: str, services: ServicesDep) -> FileResponse:
    """An uploaded original, by its sha256 (the dashboard's "before" preview)."""
    path = services.blobs.input_path(sha256)
    if path is None:
        raise NotFound(f"no input {sha256!r}")
    with path.open("rb") as f:
        head = f.read(16)
    return FileResponse(path, media_type=sniff_image_type(head))
