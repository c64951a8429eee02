"""Inputs stored once under their sha256 (Blobs.store_input), on a real folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sd_coordinator.blobs import Blobs


async def test_an_input_is_stored_once_under_its_hash_and_nothing_else_is_left(
    tmp_path: Path,
) -> None:
    blobs = Blobs(tmp_path)
    await blobs.start()
    data = os.urandom(300_000)
    (sha,) = await blobs.put_inputs([data])
    assert sha == hashlib.sha256(data).hexdigest()
    path = blobs.input_path(sha)
    assert path is not None and path.read_bytes() == data
    first = path.stat()
    assert await blobs.put_inputs([data, data]) == [sha, sha]
    assert path.stat().st_ino == first.st_ino, "a stored input is not written again"
    assert [p.name for p in blobs.inputs_dir.rglob("*") if p.is_file()] == [sha]


async def test_an_input_cut_short_by_a_crash_is_written_again_whole(tmp_path: Path) -> None:
    blobs = Blobs(tmp_path)
    await blobs.start()
    data = os.urandom(100_000)
    sha = hashlib.sha256(data).hexdigest()
    path = blobs.inputs_dir / sha[:2] / sha
    path.parent.mkdir()
    path.write_bytes(data[:4096])  # what a coordinator killed while writing it left
    assert await blobs.put_inputs([data]) == [sha]
    assert path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == [sha]
