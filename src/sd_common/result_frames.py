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


def max_result_bytes(max_image_pixels: int) -> int:
    """The largest PNG a result may be: an RGB image of MAX_IMAGE_PIXELS (results are L or RGB)
    stored without compression, plus room for PNG's and zlib's own overhead."""
    return 3 * max_image_pixels + max_image_pixels // 50 + 1024 * 1024


class FrameError(ValueError):
    """A malformed frames body."""


class ResultHeader(BaseModel):
    """One result image in a frames body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str = Field(pattern=ID)
    worker: str = Field(pattern=NAME)
    size: int = Field(ge=0)
    duration_s: float = Field(0, ge=0, le=86_400)


def encode_parts(items: Sequence[tuple[ResultHeader, bytes]]) -> list[bytes]:
    """The frames body for these results, as the pieces to send one after another (a sender
    that streams them never copies the images into one body)."""
    parts: list[bytes] = []
    for header, png in items:
        if header.size != len(png):
            raise FrameError(f"header of {header.task_id} says {header.size} bytes, not {len(png)}")
        raw = header.model_dump_json().encode()
        parts += (_LENGTH.pack(len(raw)), raw, png)
    return parts


def encode(items: Sequence[tuple[ResultHeader, bytes]]) -> bytes:
    """The frames body for these results, whole."""
    return b"".join(encode_parts(items))


def _header(raw: bytes) -> ResultHeader:
    try:
        return ResultHeader.model_validate_json(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = f"{error['loc'][0]}: " if error["loc"] else ""
        raise FrameError(f"bad frame header: {where}{error['msg']}") from None


class FrameReader:
    """Decodes a frames body as it streams in: `feed()` each chunk and get the results it
    completed; `close()` at the end of the body. Holds at most one result and one chunk, so a
    receiver never needs the whole body in memory. FrameError as soon as the body is malformed.
    """

    def __init__(self, max_size: int | None = None) -> None:
        """`max_size`: FrameError for a result announced larger (it is never buffered)."""
        self._buffer = bytearray()
        self._pending: ResultHeader | None = None
        self.count = 0
        self.max_size = max_size

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[tuple[ResultHeader, bytes]]:
        """The results that `chunk` completed, in order."""
        self._buffer += chunk
        done: list[tuple[ResultHeader, bytes]] = []
        while True:
            if self._pending is None:
                if len(self._buffer) < _LENGTH.size:
                    return done
                (length,) = _LENGTH.unpack_from(self._buffer)
                if not 0 < length <= MAX_HEADER_BYTES:
                    raise FrameError("bad frame header length")
                if len(self._buffer) < _LENGTH.size + length:
                    return done
                if self.count >= MAX_FRAMES:
                    raise FrameError(f"more than {MAX_FRAMES} results in one body")
                self._pending = _header(bytes(self._buffer[_LENGTH.size : _LENGTH.size + length]))
                if self.max_size is not None and self._pending.size > self.max_size:
                    raise FrameError(
                        f"result of task {self._pending.task_id} is {self._pending.size} bytes; "
                        f"at most {self.max_size} (a PNG of MAX_IMAGE_PIXELS)"
                    )
                del self._buffer[: _LENGTH.size + length]
            size = self._pending.size
            if len(self._buffer) < size:
                return done
            done.append((self._pending, bytes(self._buffer[:size])))
            del self._buffer[:size]
            self._pending = None
            self.count += 1

    def close(self) -> None:
        """The body ended: FrameError if it stopped inside a frame, or held no result."""
        if self._pending is not None:
            raise FrameError(f"truncated result of task {self._pending.task_id}")
        if self._buffer:
            raise FrameError("truncated frame length" if len(self._buffer) < _LENGTH.size
                             else "bad frame header length")  # fmt: skip
        if not self.count:
            raise FrameError("no results in the body")


def decode(body: bytes) -> list[tuple[ResultHeader, bytes]]:
    """The results in a whole frames body; FrameError if malformed."""
    reader = FrameReader()
    items = reader.feed(body)
    reader.close()
    return items
