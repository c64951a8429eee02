"""Content-addressed task inputs (DATA_DIR/blobs) and result files (DATA_DIR/results)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

SHA256 = re.compile(r"^[0-9a-f]{64}$")
RESULT_NAME = re.compile(r"^[0-9a-f]{32}\.png$")


def _write_atomic(path: Path, data: bytes | memoryview) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Blobs:
    """Inputs stored once by sha256, and results stored by task id."""

    def __init__(self, data_dir: Path) -> None:
        self.inputs_dir = data_dir / "blobs"
        self.results_dir = data_dir / "results"

    async def start(self) -> None:
        """Create the folders."""
        self.inputs_dir.mkdir(parents=True, exist_ok=True)
        self.results_dir.mkdir(parents=True, exist_ok=True)

    async def stop(self) -> None:
        """Nothing to release; here for the lifecycle's symmetry."""

    def input_path(self, sha256: str) -> Path | None:
        """Path of a stored input, or None if `sha256` is malformed or unknown."""
        if not SHA256.match(sha256):
            return None
        path = self.inputs_dir / sha256[:2] / sha256
        return path if path.is_file() else None

    async def put_input(self, data: bytes) -> str:
        """Store `data` once under its sha256 and return the hash."""

        def put() -> str:
            sha256 = hashlib.sha256(data).hexdigest()
            path = self.inputs_dir / sha256[:2] / sha256
            if not path.is_file():
                path.parent.mkdir(exist_ok=True)
                _write_atomic(path, data)
            return sha256

        return await asyncio.to_thread(put)

    async def get_input(self, sha256: str) -> bytes | None:
        """The stored input's bytes, or None."""
        path = self.input_path(sha256)
        return None if path is None else await asyncio.to_thread(path.read_bytes)

    @staticmethod
    def result_name(task_id: str) -> str:
        """File name of a task's result."""
        return f"{task_id}.png"

    def result_path(self, filename: str) -> Path | None:
        """Path of a stored result; None for anything that is not one (no traversal)."""
        if not RESULT_NAME.match(filename):
            return None
        path = self.results_dir / filename
        return path if path.is_file() else None

    async def put_result(self, task_id: str, data: bytes) -> str:
        """Store a task's result atomically and return its file name."""
        return (await self.put_results([(task_id, data)]))[0]

    async def put_results(self, results: Sequence[tuple[str, bytes | memoryview]]) -> list[str]:
        """Store several results atomically (one thread hop for the batch); their file names."""
        names = [self.result_name(task_id) for task_id, _ in results]

        def put() -> None:
            for name, (_, data) in zip(names, results, strict=True):
                _write_atomic(self.results_dir / name, data)

        await asyncio.to_thread(put)
        return names
