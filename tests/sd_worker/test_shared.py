"""A worker tells the coordinator's DATA_DIR apart from a folder that merely has its name, and
checks every input it reads from there before the pool trusts it."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from sd_common import storage
from sd_worker.shared import SharedStorage


def data_dir(tmp_path: Path, storage_id: str = "a" * 32) -> Path:
    (tmp_path / "results").mkdir(parents=True)
    (tmp_path / storage.PROBE_NAME).write_text(storage_id)
    return tmp_path


def test_the_offer_is_taken_only_when_the_folder_holds_the_same_id(tmp_path: Path) -> None:
    folder = data_dir(tmp_path)
    assert SharedStorage.probe({"data_dir": str(folder), "id": "a" * 32}) is not None
    for offer in (
        {"data_dir": str(folder), "id": "b" * 32},  # same path, another coordinator
        {"data_dir": str(folder / "nowhere"), "id": "a" * 32},
        {"data_dir": str(folder)},
        None,
        "x",
    ):
        assert SharedStorage.probe(offer) is None, offer


async def test_an_input_is_used_only_if_it_hashes_to_its_name(tmp_path: Path) -> None:
    shared = SharedStorage(data_dir(tmp_path))
    good, bad = b"good bytes", b"tampered bytes"
    good_sha = hashlib.sha256(good).hexdigest()
    bad_sha = hashlib.sha256(b"what it should be").hexdigest()
    for sha, data in ((good_sha, good), (bad_sha, bad)):
        path = storage.input_path(tmp_path, sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    assert await shared.input_path(good_sha) == storage.input_path(tmp_path, good_sha)
    assert await shared.input_path(bad_sha) is None
    assert await shared.input_path("0" * 64) is None  # not there
    assert await shared.input_path("../../etc/passwd") is None


async def test_deliveries_of_one_input_arriving_together_hash_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = SharedStorage(data_dir(tmp_path))
    data = b"one photo, many copies" * 10_000
    sha = hashlib.sha256(data).hexdigest()
    path = storage.input_path(tmp_path, sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    hashed: list[Path] = []
    real = storage.file_has_sha256

    def counting(file: Path, digest: str) -> bool:
        hashed.append(file)
        return real(file, digest)

    monkeypatch.setattr(storage, "file_has_sha256", counting)
    paths = await asyncio.gather(*(shared.input_path(sha) for _ in range(64)))
    assert paths == [path] * 64
    assert hashed == [path]
