"""A small LRU of values loaded asynchronously, where concurrent misses of one key load once."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class SingleFlightLRU(Generic[K, V]):
    """Remembers up to `max_size` values, dropping the least recently used; a value that is
    None, or a load that raised, is not remembered, so the next use loads again."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._values: OrderedDict[K, V] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The value of `key`, from `load()` on a miss; concurrent misses share one load."""
        value = self._values.get(key)  # None is never remembered
        if value is not None:
            self._values.move_to_end(key)
            return value
        loading = self._loading.get(key)
        if loading is None:
            # The load runs as a task of its own: a waiter that is cancelled (its task was
            # finished elsewhere) must not cancel the load the others wait for.
            loading = asyncio.ensure_future(self._load(key, load))
            self._loading[key] = loading
            loading.add_done_callback(lambda done: self._loaded(key, done))
        return await asyncio.shield(loading)

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        value = await load()
        if value is not None:
            self._values[key] = value
            while len(self._values) > self.max_size:
                self._values.popitem(last=False)
        return value

    def _loaded(self, key: K, done: asyncio.Future[V]) -> None:
        del self._loading[key]
        if not done.cancelled():
            done.exception()  # mark retrieved: the waiters re-raise it, if any are left

    def forget(self, key: K) -> None:
        """Drop the value of `key`: its next use loads it again."""
        self._values.pop(key, None)
