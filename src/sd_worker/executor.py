"""The process pool that runs CPU work; the event loop never decodes or encodes an image."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

log = logging.getLogger("sd.worker.executor")

T = TypeVar("T")


class PoolCrashed(RuntimeError):
    """A pool process died while running the task (the task may be poison)."""


def pool_size() -> int:
    """One process per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Executor:
    """A ProcessPoolExecutor that replaces itself when a task kills one of its processes."""

    def __init__(self, workers: int | None = None, preload: list[str] | None = None) -> None:
        self.workers = workers or pool_size()
        self.preload = preload or []
        self._pool: ProcessPoolExecutor | None = None
        self._generation = 0

    def start(self) -> None:
        """Create the pool (forkserver: forking a threaded asyncio process is unsafe)."""
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            context.set_forkserver_preload(["PIL.Image", "sd_worker.ops", *self.preload])
        self._context = context
        self._pool = ProcessPoolExecutor(self.workers, mp_context=context)

    def stop(self) -> None:
        """Shut the pool down (idempotent)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in a pool process; PoolCrashed if that process died."""
        if self._pool is None:
            raise RuntimeError("Executor used before start()")
        generation, pool = self._generation, self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except BrokenProcessPool as exc:
            self._replace(generation)
            raise PoolCrashed("a pool process died while running the task") from exc

    def _replace(self, generation: int) -> None:
        # Every task in flight sees the same broken pool; only the first replaces it.
        if generation != self._generation or self._pool is None:
            return
        self._generation += 1
        broken, self._pool = self._pool, ProcessPoolExecutor(self.workers, mp_context=self._context)
        broken.shutdown(wait=False, cancel_futures=True)
        log.warning("a pool process died; started a fresh pool of %d processes", self.workers)
