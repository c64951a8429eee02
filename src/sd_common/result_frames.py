"""The body of POST /result-images: several result images in one request, as raw bytes.

A body is a sequence of frames; each frame is a 4-byte big-endian header length, a JSON header
(`ResultHeader`), then exactly `size` bytes of the PNG. No base64, no multipart parsing.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sd_common.messages import ID, NAME

MEDIA_TYPE = "application/x-sd-result-frames"
MAX_HEADER_BYTES = 1024
MAX_FRAMES = 1000
_LENGTH = struct.Struct(">I")


class FrameError(ValueError):
    """A malformed frames body."""


class ResultHeader(BaseModel):
    """One result image in a frames body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str = Field(pattern=ID)
    worker: str = Field(pattern=NAME)
    size: int = Field(ge=0)
    duration_s: float = Field(0, ge=0, le=86_400)


def encode(items: Sequence[tuple[ResultHeader, bytes]]) -> bytes:
    """The frames body for these results."""
    parts: list[bytes] = []
    for header, png in items:
        if header.size != len(png):
            raise FrameError(f"header of {header.task_id} says {header.size} bytes, not {len(png)}")
        raw = header.model_dump_json().encode()
        parts += (_LENGTH.pack(len(raw)), raw, png)
    return b"".join(parts)


def decode(body: bytes) -> list[tuple[ResultHeader, memoryview]]:
    """The results in a frames body (views into it, no copies); FrameError if malformed."""
    view = memoryview(body)
    items: list[tuple[ResultHeader, memoryview]] = []
    offset = 0
    while offset < len(view):
        if len(items) >= MAX_FRAMES:
            raise FrameError(f"more than {MAX_FRAMES} results in one body")
        if offset + _LENGTH.size > len(view):
            raise FrameError("truncated frame length")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        if not 0 < length <= MAX_HEADER_BYTES or offset + length > len(view):
            raise FrameError("bad frame header length")
        try:
            header = ResultHeader.model_validate_json(bytes(view[offset : offset + length]))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = f"{error['loc'][0]}: " if error["loc"] else ""
            raise FrameError(f"bad frame header: {where}{error['msg']}") from None
        offset += length
        if offset + header.size > len(view):
            raise FrameError(f"truncated result of task {header.task_id}")
        items.append((header, view[offset : offset + header.size]))
        offset += header.size
    if not items:
        raise FrameError("no results in the body")
    return items
