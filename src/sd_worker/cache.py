"""Task inputs cached on the node by sha256: 50 copies of one image fetch it once."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from sd_common import storage
from sd_worker.lru import SingleFlightLRU

MAX_PATHS = 100_000  # verified files remembered; past that the oldest are checked again


class InputMismatch(ValueError):
    """The fetched bytes do not hash to the name they were asked by."""


class InputCache:
    """A folder of verified files named by hash; concurrent misses fetch once. Pool processes
    read the files themselves, so input bytes never cross the pool's pipe."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._on_disk: SingleFlightLRU[str, Path] = SingleFlightLRU(MAX_PATHS)

    async def path(self, sha256: str, fetch: Callable[[str], Awaitable[bytes]]) -> Path:
        """Path of the verified file of input `sha256` (fetched with `fetch` on a miss), for a
        pool process to read itself. Concurrent misses fetch once."""
        return await self._on_disk.get(sha256, lambda: self._fetch(sha256, fetch))

    async def _fetch(self, sha256: str, fetch: Callable[[str], Awaitable[bytes]]) -> Path:
        path = self.folder / sha256
        if not await asyncio.to_thread(storage.file_has_sha256, path, sha256):
            data = await fetch(sha256)
            if hashlib.sha256(data).hexdigest() != sha256:
                raise InputMismatch(f"input {sha256[:12]}… arrived corrupted (hash mismatch)")
            await asyncio.to_thread(_write_atomic, path, data)
        return path

    def forget(self, sha256: str) -> None:
        """Drop what is known of input `sha256` (its file vanished): the next use fetches it."""
        self._on_disk.forget(sha256)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with storage.atomic_file(path) as f:
        f.write(data)
