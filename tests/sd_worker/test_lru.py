"""SingleFlightLRU: the worker's one cache, for its inputs and shared storage's verified paths."""

from __future__ import annotations

import asyncio

import pytest

from sd_worker.lru import SingleFlightLRU


class Loader:
    def __init__(self, value: str | None = "value", delay_s: float = 0.01) -> None:
        self.value = value
        self.delay_s = delay_s
        self.calls = 0

    async def __call__(self) -> str | None:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        return self.value


async def test_concurrent_misses_of_one_key_load_once() -> None:
    lru: SingleFlightLRU[str, str | None] = SingleFlightLRU(10)
    load = Loader()
    assert await asyncio.gather(*(lru.get("k", load) for _ in range(10))) == ["value"] * 10
    assert await lru.get("k", load) == "value"
    assert load.calls == 1


async def test_a_cancelled_waiter_does_not_cancel_the_load_others_wait_for() -> None:
    lru: SingleFlightLRU[str, str | None] = SingleFlightLRU(10)
    load = Loader(delay_s=0.05)
    first = asyncio.create_task(lru.get("k", load))
    second = asyncio.create_task(lru.get("k", load))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == "value"
    assert first.cancelled() and load.calls == 1


async def test_the_least_recently_used_value_is_dropped_past_the_size() -> None:
    lru: SingleFlightLRU[str, str | None] = SingleFlightLRU(2)
    loads = {key: Loader(key, 0) for key in "abc"}
    await lru.get("a", loads["a"])
    await lru.get("b", loads["b"])
    await lru.get("a", loads["a"])  # "b" is now the least recently used
    await lru.get("c", loads["c"])
    for key in "ab":
        await lru.get(key, loads[key])
    assert {key: load.calls for key, load in loads.items()} == {"a": 1, "b": 2, "c": 1}


async def test_none_a_failed_load_and_a_forgotten_key_load_again() -> None:
    lru: SingleFlightLRU[str, str | None] = SingleFlightLRU(10)
    missing = Loader(None, 0)
    assert await lru.get("k", missing) is None
    assert await lru.get("k", missing) is None
    assert missing.calls == 2

    async def fail() -> str | None:
        raise OSError("unreachable")

    with pytest.raises(OSError, match="unreachable"):
        await lru.get("x", fail)
    load = Loader("x", 0)
    assert await lru.get("x", load) == "x"
    lru.forget("x")
    assert await lru.get("x", load) == "x"
    assert load.calls == 2
