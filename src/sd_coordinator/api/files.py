"""Serving stored files: regular files only, opened without following links or blocking."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from sd_coordinator.blobs import open_regular
from sd_coordinator.errors import NotFound

CHUNK_BYTES = 1024 * 1024
SNIFF_BYTES = 16


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(CHUNK_BYTES):
        yield chunk


class FileStream(StreamingResponse):
    """Streams an open file and closes it however the answer ends (sent, hung up, failed)."""

    def __init__(self, f: BinaryIO, *args: Any, **kwargs: Any) -> None:
        super().__init__(_chunks(f), *args, **kwargs)
        self.file = f

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.file.close()


async def stored_file(
    path: Path | None,
    media_type: str | Callable[[bytes], str],
    what: str,
    headers: dict[str, str] | None = None,
) -> StreamingResponse:
    """The file at `path` as the answer; 404 naming `what` if there is none or it is not a
    regular file. `media_type` may be a function of the file's first bytes. The file is read
    from the descriptor opened here, so swapping it for a link afterwards changes nothing."""
    opened = None if path is None else await asyncio.to_thread(open_regular, path)
    if opened is None:
        raise NotFound(f"no {what}")
    fd, size = opened
    f = os.fdopen(fd, "rb")
    if callable(media_type):

        def sniff() -> bytes:
            head = f.read(SNIFF_BYTES)
            f.seek(0)
            return head

        try:
            first = await asyncio.to_thread(sniff)
        except OSError:
            f.close()
            raise NotFound(f"no {what}") from None
        media_type = media_type(first)
    return FileStream(
        f, media_type=media_type, headers={"Content-Length": str(size), **(headers or {})}
    )
