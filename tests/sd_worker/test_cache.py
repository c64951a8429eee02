"""The worker's input cache hands the pool a verified file path, fetching each input once."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from sd_worker.cache import InputCache, InputMismatch

DATA = b"an input image, as far as the cache is concerned"
SHA256 = hashlib.sha256(DATA).hexdigest()


class Fetcher:
    def __init__(self, data: bytes = DATA) -> None:
        self.data = data
        self.calls = 0

    async def __call__(self, sha256: str) -> bytes:
        self.calls += 1
        await asyncio.sleep(0.01)
        return self.data


async def test_concurrent_misses_fetch_once_and_share_the_file(tmp_path: Path) -> None:
    cache, fetch = InputCache(tmp_path), Fetcher()
    paths = await asyncio.gather(*(cache.path(SHA256, fetch) for _ in range(10)))
    assert fetch.calls == 1
    assert set(paths) == {tmp_path / SHA256}
    assert (tmp_path / SHA256).read_bytes() == DATA


async def test_a_verified_file_on_disk_is_used_after_a_restart(tmp_path: Path) -> None:
    await InputCache(tmp_path).path(SHA256, Fetcher())
    fetch = Fetcher()
    assert await InputCache(tmp_path).path(SHA256, fetch) == tmp_path / SHA256
    assert fetch.calls == 0


async def test_a_corrupted_file_on_disk_is_fetched_again(tmp_path: Path) -> None:
    (tmp_path / SHA256).write_bytes(DATA[:10])
    fetch = Fetcher()
    path = await InputCache(tmp_path).path(SHA256, fetch)
    assert fetch.calls == 1 and path.read_bytes() == DATA


async def test_a_forgotten_input_is_fetched_again(tmp_path: Path) -> None:
    cache, fetch = InputCache(tmp_path), Fetcher()
    await cache.path(SHA256, fetch)
    (tmp_path / SHA256).unlink()
    cache.forget(SHA256)
    await cache.path(SHA256, fetch)
    assert fetch.calls == 2 and (tmp_path / SHA256).read_bytes() == DATA


async def test_bytes_that_do_not_match_their_hash_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputMismatch):
        await InputCache(tmp_path).path(SHA256, Fetcher(b"something else"))
    assert not (tmp_path / SHA256).exists()
