"""A POST /results body read as it streams in (sd_common.result_frames): its outcomes kept, its
result images spooled to hidden files in results/ every SPOOL_BYTES of them, and an image larger
than that written to a file of its own as it arrives, so a request holds little memory however
large its body. Nothing is stored here: the ingestor moves the files of the results it stores
into place, and `discard()` removes the rest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from pathlib import Path
from typing import BinaryIO

from sd_common.messages import TaskOutcome
from sd_common.result_frames import FrameReader, ResultHeader
from sd_coordinator.blobs import PNG_SIGNATURE, Blobs
from sd_coordinator.ingest import ImageResult

SPOOL_BYTES = 4 * 1024 * 1024


class ResultBody:
    """The outcomes and result images of one body, in order; `read()` it, then `discard()`."""

    def __init__(self, blobs: Blobs, max_image_bytes: int) -> None:
        self.blobs = blobs
        self.reader = FrameReader(max_image_bytes)
        self.outcomes: list[TaskOutcome] = []
        self.images: list[ImageResult] = []
        self.is_image: list[bool] = []  # each frame's kind, in body order
        self._held: list[tuple[ResultHeader, bytes]] = []  # whole images not yet spooled
        self._held_bytes = 0
        # The image being read: its pieces so far, then, past SPOOL_BYTES, its own file (or
        # only its first bytes if it is not a PNG: enough for the answer that refuses it).
        self._parts: list[bytes] = []
        self._parts_bytes = 0
        self._own: tuple[Path, BinaryIO] | bytes | None = None

    async def read(self, chunks: AsyncIterable[bytes]) -> None:
        """Read the whole body; FrameError as soon as it is malformed."""
        async for chunk in chunks:
            for header, piece, ended in self.reader.feed(chunk):
                if header.size is None:
                    self.is_image.append(False)
                    self.outcomes.append(header)
                    continue
                self._parts.append(piece)
                self._parts_bytes += len(piece)
                if ended:
                    await self._image_ended(header)
                elif self._parts_bytes >= SPOOL_BYTES:
                    await self._write_parts()
            if self._held_bytes >= SPOOL_BYTES:
                await self._spool_held()
        self.reader.close()
        await self._spool_held()

    async def _image_ended(self, header: ResultHeader) -> None:
        self.is_image.append(True)
        if self._own is None:
            png = b"".join(self._parts)
            self._held.append((header, png))
            self._held_bytes += len(png)
        else:
            await self._write_parts()
            own, self._own = self._own, None
            if isinstance(own, tuple):
                await asyncio.to_thread(own[1].close)
            data = own[0] if isinstance(own, tuple) else own
            self.images.append(ImageResult(header.task_id, header.worker, data, header.duration_s))
        self._parts, self._parts_bytes = [], 0

    async def _write_parts(self) -> None:
        data = b"".join(self._parts)
        self._parts, self._parts_bytes = [], 0
        if self._own is None:
            if data[: len(PNG_SIGNATURE)] != PNG_SIGNATURE:
                self._own = data[: len(PNG_SIGNATURE)]
                return
            await self._spool_held()  # the images before this one keep their order
            self._own = await self.blobs.open_spool()
        if isinstance(self._own, tuple):
            await asyncio.to_thread(self._own[1].write, data)

    async def _spool_held(self) -> None:
        """The whole images read so far, each spooled to a file (what is not a PNG keeps only
        its first bytes)."""
        held, self._held, self._held_bytes = self._held, [], 0
        signature = len(PNG_SIGNATURE)
        pngs = [png[:signature] == PNG_SIGNATURE for _, png in held]
        paths = iter(
            await self.blobs.spool_results(
                [png for (_, png), ok in zip(held, pngs, strict=True) if ok]
            )
        )
        self.images += [
            ImageResult(h.task_id, h.worker, next(paths) if ok else png[:signature], h.duration_s)
            for (h, png), ok in zip(held, pngs, strict=True)
        ]

    async def discard(self) -> None:
        """Remove every file spooled for this body that was not stored (stored ones were moved
        into place): duplicates, refusals, the images of a body cut short."""
        paths = [r.png for r in self.images if isinstance(r.png, Path)]
        if isinstance(self._own, tuple):
            await asyncio.to_thread(self._own[1].close)
            paths.append(self._own[0])
            self._own = None
        await self.blobs.discard(paths)
