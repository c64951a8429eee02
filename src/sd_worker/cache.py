"""Task inputs cached on the node by sha256: 50 copies of one image fetch it once."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

DEFAULT_MEMORY_BYTES = 256 * 1024 * 1024
MAX_PATHS = 100_000  # verified files remembered; past that the oldest are checked again


class InputMismatch(ValueError):
    """The fetched bytes do not hash to the name they were asked by."""


class InputCache:
    """A memory LRU in front of a folder of files named by hash; concurrent misses fetch once."""

    def __init__(self, folder: Path, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        self.folder = folder
        self.memory_bytes = memory_bytes
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._memory_used = 0
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
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
            if await asyncio.to_thread(_read_verified, path, sha256) is None:
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
        data = self._memory.pop(sha256, None)
        if data is not None:
            self._memory_used -= len(data)

    async def get(self, sha256: str, fetch: Callable[[str], Awaitable[bytes]]) -> bytes:
        """The verified bytes of input `sha256`, fetched with `fetch` on a miss."""
        data = self._memory.get(sha256)
        if data is not None:
            self._memory.move_to_end(sha256)
            self.hits += 1
            return data
        inflight = self._inflight.get(sha256)
        if inflight is not None:
            self.hits += 1
            return await asyncio.shield(inflight)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[sha256] = future
        try:
            data = await self._load(sha256, fetch)
            future.set_result(data)
            return data
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            del self._inflight[sha256]

    async def _load(self, sha256: str, fetch: Callable[[str], Awaitable[bytes]]) -> bytes:
        path = self.folder / sha256
        data = await asyncio.to_thread(_read_verified, path, sha256)
        if data is None:
            self.misses += 1
            data = await fetch(sha256)
            if hashlib.sha256(data).hexdigest() != sha256:
                raise InputMismatch(f"input {sha256[:12]}… arrived corrupted (hash mismatch)")
            await asyncio.to_thread(_write_atomic, path, data)
        else:
            self.hits += 1
        self._remember(sha256, data)
        return data

    def _remember(self, sha256: str, data: bytes) -> None:
        if len(data) > self.memory_bytes:
            return
        self._memory[sha256] = data
        self._memory_used += len(data)
        while self._memory_used > self.memory_bytes:
            _, old = self._memory.popitem(last=False)
            self._memory_used -= len(old)


def _read_verified(path: Path, sha256: str) -> bytes | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    # A file on disk could be truncated by a crash or tampered with: trust only the hash.
    return data if hashlib.sha256(data).hexdigest() == sha256 else None


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
