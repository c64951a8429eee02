"""Task inputs cached on the node by sha256: 50 copies of one image fetch it once."""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

from sd_common import storage

MAX_PATHS = 100_000  # verified files remembered; past that the oldest are checked again


class InputMismatch(ValueError):
    """The fetched bytes do not hash to the name they were asked by."""


class InputCache:
    """A folder of verified files named by hash; concurrent misses fetch once. Pool processes
    read the files themselves, so input bytes never cross the pool's pipe."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._on_disk: OrderedDict[str, Path] = OrderedDict()
        self._path_inflight: dict[str, asyncio.Future[Path]] = {}
        self.hits = 0
        self.misses = 0

    async def path(self, sha256: str, fetch: Callable[[str], Awaitable[bytes]]) -> Path:
        """Path of the verified file of input `sha256` (fetched with `fetch` on a miss), for a
        pool process to read itself. Concurrent misses fetch once."""
        path = self._on_disk.get(sha256)
        if path is not None:
            self._on_disk.move_to_end(sha256)
            self.hits += 1
            return path
        inflight = self._path_inflight.get(sha256)
        if inflight is None:
            # The fetch runs as a task of its own: a waiter that is cancelled (its task was
            # finished elsewhere) must not cancel the fetch the others wait for.
            inflight = asyncio.ensure_future(self._fetch(sha256, fetch))
            self._path_inflight[sha256] = inflight
            inflight.add_done_callback(lambda done: self._fetched(sha256, done))
        else:
            self.hits += 1
        return await asyncio.shield(inflight)

    async def _fetch(self, sha256: str, fetch: Callable[[str], Awaitable[bytes]]) -> Path:
        path = self.folder / sha256
        if not await asyncio.to_thread(storage.file_has_sha256, path, sha256):
            self.misses += 1
            data = await fetch(sha256)
            if hashlib.sha256(data).hexdigest() != sha256:
                raise InputMismatch(f"input {sha256[:12]}… arrived corrupted (hash mismatch)")
            await asyncio.to_thread(_write_atomic, path, data)
        else:
            self.hits += 1
        self._on_disk[sha256] = path
        while len(self._on_disk) > MAX_PATHS:
            self._on_disk.popitem(last=False)
        return path

    def _fetched(self, sha256: str, done: asyncio.Future[Path]) -> None:
        del self._path_inflight[sha256]
        if not done.cancelled():
            done.exception()  # mark retrieved: the waiters re-raise it, if any are left

    def forget(self, sha256: str) -> None:
        """Drop what is known of input `sha256` (its file vanished): the next use fetches it."""
        self._on_disk.pop(sha256, None)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with storage.atomic_file(path) as f:
        f.write(data)
