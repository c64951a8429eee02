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
        if inflight is not None:
            self.hits += 1
            return await asyncio.shield(inflight)
        future: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        self._path_inflight[sha256] = future
        try:
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
            future.set_result(path)
            return path
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            del self._path_inflight[sha256]

    def forget(self, sha256: str) -> None:
        """Drop what is known of input `sha256` (its file vanished): the next use fetches it."""
        self._on_disk.pop(sha256, None)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with storage.atomic_file(path) as f:
        f.write(data)
