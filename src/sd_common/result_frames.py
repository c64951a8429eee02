"""The body of POST /results: a batch of task outcomes (result images, custom outputs,
failures) in one request, images as raw bytes.

A body is a sequence of frames; each frame is a 4-byte big-endian header length, a JSON header
(`ResultHeader`: a task's outcome, with `size` when a result image follows), then exactly `size`
bytes of PNG. No base64, no multipart parsing.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from pydantic import Field, ValidationError, model_validator

from sd_common.messages import TaskOutcome

MEDIA_TYPE = "application/x-sd-result-frames"
# All the headers of one body, like any JSON body the coordinator takes, are bounded.
HEADERS_MAX_BYTES = 1024 * 1024
MAX_FRAMES = 1000
LENGTH = struct.Struct(">I")  # each frame: this header length, the JSON header, its bytes


def max_result_bytes(max_image_pixels: int) -> int:
    """The largest PNG a result may be: an RGB image of MAX_IMAGE_PIXELS (results are L or RGB)
    stored without compression, plus room for PNG's and zlib's own overhead."""
    return 3 * max_image_pixels + max_image_pixels // 50 + 1024 * 1024


class FrameError(ValueError):
    """A malformed frames body."""


class FramesTooLarge(FrameError):
    """The headers of a frames body hold more than HEADERS_MAX_BYTES."""


class ResultHeader(TaskOutcome):
    """One frame's header: a task's outcome and, when its result image follows, its size."""

    size: int | None = Field(
        None,
        ge=0,
        description="bytes of the result PNG that follow this header; absent when no image "
        "does (a custom task's output, a failure, a result in shared storage)",
    )

    @model_validator(mode="after")
    def _image_alone(self) -> ResultHeader:
        if self.size is not None and (
            self.error is not None or self.retry or self.output is not None or self.result
        ):
            raise ValueError("a result image comes without error, retry, output or result")
        return self


def encode_parts(items: Sequence[tuple[TaskOutcome, bytes]]) -> list[bytes]:
    """The frames body for these outcomes (a ResultHeader with its PNG, or any outcome with b""
    when it has none), as the pieces to send one after another (a sender that streams them
    never copies the images into one body)."""
    parts: list[bytes] = []
    for header, png in items:
        size = header.size if isinstance(header, ResultHeader) else None
        if (size or 0) != len(png):
            raise FrameError(f"header of {header.task_id} says {size} bytes, not {len(png)}")
        raw = header.model_dump_json(exclude_defaults=True).encode()
        parts += (LENGTH.pack(len(raw)), raw, png) if png else (LENGTH.pack(len(raw)), raw)
    return parts


def encode(items: Sequence[tuple[TaskOutcome, bytes]]) -> bytes:
    """The frames body for these outcomes, whole."""
    return b"".join(encode_parts(items))


def _header(raw: bytes) -> ResultHeader:
    try:
        return ResultHeader.model_validate_json(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = f"{error['loc'][0]}: " if error["loc"] else ""
        raise FrameError(f"bad frame header: {where}{error['msg']}") from None


# What a reader hands on as a body streams in: a frame's header, a piece of its image (b"" for
# none), and whether the frame ended with it.
Piece = tuple[ResultHeader, bytes, bool]


class FrameReader:
    """Decodes a frames body as it streams in: `feed()` each chunk and get the pieces of frames
    it brought; `close()` at the end of the body. An image that arrives over several chunks
    comes in several pieces, so neither the reader nor a receiver that writes the pieces out
    ever holds a whole result. FrameError as soon as the body is malformed, FramesTooLarge once
    its headers pass HEADERS_MAX_BYTES."""

    def __init__(self, max_size: int | None = None) -> None:
        """`max_size`: FrameError for a result announced larger (it is never read)."""
        self._buffer = bytearray()
        self._pending: ResultHeader | None = None
        self._left = 0  # bytes of the pending frame's image still to come
        self.count = 0
        self.header_bytes = 0
        self.max_size = max_size

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Piece]:
        """The pieces of frames that `chunk` brought, in order."""
        self._buffer += chunk
        pieces: list[Piece] = []
        while True:
            if self._pending is None:
                if not self._read_header():
                    return pieces
            assert self._pending is not None
            take = min(self._left, len(self._buffer))
            if self._left and not take:
                return pieces
            piece = bytes(self._buffer[:take])
            del self._buffer[:take]
            self._left -= take
            pieces.append((self._pending, piece, not self._left))
            if self._left:
                return pieces
            self._pending = None
            self.count += 1

    def _read_header(self) -> bool:
        """Take the next frame's header off the buffer; False while it has not all arrived."""
        if len(self._buffer) < LENGTH.size:
            return False
        (length,) = LENGTH.unpack_from(self._buffer)
        if not 0 < length <= HEADERS_MAX_BYTES:
            raise FrameError("bad frame header length")
        if self.header_bytes + length > HEADERS_MAX_BYTES:
            limit_mb = HEADERS_MAX_BYTES / 1048576
            raise FramesTooLarge(
                f"the headers of one body may hold at most {limit_mb:.1f} MB: "
                "send fewer outcomes a request"
            )
        if len(self._buffer) < LENGTH.size + length:
            return False
        if self.count >= MAX_FRAMES:
            raise FrameError(f"more than {MAX_FRAMES} results in one body")
        header = _header(bytes(self._buffer[LENGTH.size : LENGTH.size + length]))
        size = header.size or 0
        if self.max_size is not None and size > self.max_size:
            raise FrameError(
                f"result of task {header.task_id} is {size} bytes; "
                f"at most {self.max_size} (a PNG of MAX_IMAGE_PIXELS)"
            )
        del self._buffer[: LENGTH.size + length]
        self.header_bytes += length
        self._pending, self._left = header, size
        return True

    def close(self) -> None:
        """The body ended: FrameError if it stopped inside a frame, or held no result."""
        if self._pending is not None:
            raise FrameError(f"truncated result of task {self._pending.task_id}")
        if self._buffer:
            raise FrameError(
                "truncated frame length"
                if len(self._buffer) < LENGTH.size
                else "bad frame header length"
            )
        if not self.count:
            raise FrameError("no results in the body")


def decode(body: bytes) -> list[tuple[ResultHeader, bytes]]:
    """The outcomes in a whole frames body, each with its PNG (b"" for none); FrameError if
    malformed."""
    reader = FrameReader()
    pieces = reader.feed(body)
    reader.close()
    return [(header, png) for header, png, _ in pieces]
