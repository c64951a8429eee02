"""Content-addressed task inputs (DATA_DIR/blobs) and result files (DATA_DIR/results)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from sd_common import storage
from sd_common.storage import RESULT_NAME, SHA256

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SPOOL_PREFIX = ".spool-"
# Windows opens a descriptor in text mode unless asked for binary (0 elsewhere).
READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)
# Never through a symlink, never waiting on a FIFO (where the platform has these flags).
STORED_FLAGS = READ_FLAGS | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)

ResultData = bytes | memoryview | Path
"""A result image's bytes, or the Path of its file spooled by `Blobs.spool_results`."""


def _write_atomic(path: Path | str, data: bytes | memoryview) -> None:
    with storage.atomic_file(path) as f:
        f.write(data)


def open_regular(path: Path | str) -> tuple[int, int] | None:
    """(descriptor, size) of the regular file at `path`, opened without following a symlink
    and without blocking (a FIFO planted there would hang the reader); None for anything else."""
    try:
        fd = os.open(path, STORED_FLAGS)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    return fd, info.st_size


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


class Blobs:
    """Inputs stored once by sha256, and results stored by task id."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.inputs_dir = storage.inputs_dir(data_dir)
        self.results_dir = storage.results_dir(data_dir)
        self.storage_id = uuid.uuid4().hex

    async def start(self) -> None:
        """Create the folders and write this run's storage id (see sd_common.storage)."""
        self.inputs_dir.mkdir(parents=True, exist_ok=True)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.data_dir / storage.PROBE_NAME, self.storage_id.encode())
        # Spooled results of requests cut short by a crash: never stored, nobody names them.
        # Results workers wrote that were never reported: they are never accepted now.
        for prefix in (SPOOL_PREFIX, storage.INCOMING_PREFIX):
            for leftover in self.results_dir.glob(prefix + "*"):
                leftover.unlink(missing_ok=True)

    def storage_offer(self) -> dict[str, str]:
        """What a registering worker needs to tell whether it sees this DATA_DIR."""
        return {"data_dir": str(self.data_dir.resolve()), "id": self.storage_id}

    async def stop(self) -> None:
        """Nothing to release; here for the lifecycle's symmetry."""

    def input_path(self, sha256: str) -> Path | None:
        """Path of a stored input, or None if `sha256` is malformed or unknown."""
        if not SHA256.match(sha256):
            return None
        path = storage.input_path(self.data_dir, sha256)
        return path if _is_regular(path) else None

    def store_input(self, data: bytes) -> str:
        """Store `data` once under its sha256 and return the hash. Blocking: call it from a
        thread, as `put_inputs` does.

        A new input is written straight under its name, created exclusively: no temporary
        sibling and rename, which cost this path more kernel time than the write. Nobody
        reads it before its tasks are published, after this returns. A file already there
        of another size is one cut short (a crash while writing it) or still being written
        by a concurrent upload: it is written again whole, atomically. A worker checks every
        input's hash before it uses it in any case."""
        sha256 = hashlib.sha256(data).hexdigest()
        path = storage.input_path(self.data_dir, sha256)
        for attempt in range(2):
            try:
                storage.write_new(path, data, exclusive=True)
                return sha256
            except FileNotFoundError:  # the first input of its folder
                if attempt:
                    raise
                os.makedirs(os.path.dirname(path), exist_ok=True)
            except FileExistsError:
                break
        try:
            whole = os.stat(path).st_size == len(data)
        except FileNotFoundError:  # its writer failed and removed it
            whole = False
        if not whole:
            _write_atomic(path, data)
        return sha256

    async def put_inputs(self, inputs: Sequence[bytes]) -> list[str]:
        """`store_input` for each of `inputs`, in one thread hop; their hashes."""
        return await asyncio.to_thread(lambda: [self.store_input(data) for data in inputs])

    async def get_input(self, sha256: str) -> bytes | None:
        """The stored input's bytes, or None."""
        path = self.input_path(sha256)
        return None if path is None else await asyncio.to_thread(path.read_bytes)

    @staticmethod
    def result_name(task_id: str) -> str:
        """File name of a task's result."""
        return storage.result_name(task_id)

    def result_path(self, filename: str) -> Path | None:
        """Path of a stored result; None for anything that is not one (no traversal)."""
        if not RESULT_NAME.match(filename):
            return None
        path = self.results_dir / filename
        return path if _is_regular(path) else None

    async def put_result(self, task_id: str, data: bytes) -> str:
        """Store a task's result atomically and return its file name."""
        return (await self.put_results([(task_id, data)]))[0]

    async def put_results(self, results: Sequence[tuple[str, ResultData]]) -> list[str]:
        """Store several results atomically (one thread hop for the batch): bytes are written,
        spooled files renamed into place. Their file names."""
        names = [self.result_name(task_id) for task_id, _ in results]

        def put() -> None:
            self.results_dir.mkdir(parents=True, exist_ok=True)  # even if someone cleared it
            for name, (_, data) in zip(names, results, strict=True):
                if isinstance(data, Path):
                    storage.replace_file(data, self.results_dir / name)
                else:
                    _write_atomic(self.results_dir / name, data)

        await asyncio.to_thread(put)
        return names

    async def spool_results(self, pngs: Sequence[bytes]) -> list[Path]:
        """Write result images that arrive in a stream to hidden files in results/ (one thread
        hop for the lot), so the request need not hold them in memory. They are stored only by
        `put_results`; `discard` removes the ones that are not."""

        def spool() -> list[Path]:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            paths = []
            for png in pngs:
                path = self.results_dir / f"{SPOOL_PREFIX}{uuid.uuid4().hex}.png"
                with open(path, "wb") as f:
                    f.write(png)
                paths.append(path)
            return paths

        return await asyncio.to_thread(spool) if pngs else []

    async def open_spool(self) -> tuple[Path, BinaryIO]:
        """A new hidden file in results/ for one result image written as it streams in (as
        `spool_results`), and the file open for writing."""
        path = self.results_dir / f"{SPOOL_PREFIX}{uuid.uuid4().hex}.png"

        def create() -> BinaryIO:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            return open(path, "wb")

        return path, await asyncio.to_thread(create)

    async def discard(self, paths: Sequence[Path]) -> None:
        """Remove spooled files that were not stored (missing ones are fine)."""

        def remove() -> None:
            for path in paths:
                with contextlib.suppress(OSError):
                    path.unlink()

        if paths:
            await asyncio.to_thread(remove)

    async def accept_incoming(self, incoming: Sequence[tuple[str, str]]) -> list[bool]:
        """For results a worker wrote into results/ itself (shared storage), as (file name,
        task id) of tasks not finished yet: each file that is a regular file starting as a PNG
        becomes the task's result (renamed into place); any other is removed. Whether each was
        accepted (one thread hop for the batch, none for an empty one)."""
        if not incoming:
            return []
        folder = str(self.results_dir)

        def accept(name: str, task_id: str) -> bool:
            path = os.path.join(folder, name)
            opened = open_regular(path)
            if opened is None:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                return False
            fd, _ = opened
            try:
                ok = os.read(fd, len(PNG_SIGNATURE)) == PNG_SIGNATURE
            except OSError:
                ok = False
            finally:
                os.close(fd)
            try:
                if ok:
                    storage.replace_file(path, os.path.join(folder, self.result_name(task_id)))
                else:
                    os.unlink(path)
            except OSError:
                return False
            return ok

        return await asyncio.to_thread(lambda: [accept(n, t) for n, t in incoming])

    async def discard_incoming(self, names: Sequence[str]) -> None:
        """Remove results workers wrote for tasks that were finished already (late ones)."""
        await self.discard([self.results_dir / name for name in names])
