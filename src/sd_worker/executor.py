"""The process pool that runs CPU work; the event loop never decodes or encodes an image."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.synchronize
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import psutil

from sd_worker.portable_pool import DEPTH, PortablePool

if TYPE_CHECKING:  # for the annotation only
    from sd_common.settings import Settings

log = logging.getLogger("sd.worker.executor")

T = TypeVar("T")

OWNER_CHECK_S = 1.0
# ProcessPoolExecutor's limit on Windows (WaitForMultipleObjects).
WINDOWS_MAX_WORKERS = 61


class Pool(Protocol):
    """What the Executor needs of a pool: LoopPool (Linux) and PortablePool (everywhere)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]: ...
    def shutdown(self, wait: bool = True, cancel_futures: bool = True) -> None: ...
    def hand_back(self) -> int: ...


class PoolUnavailable(RuntimeError):
    """The process pool cannot start on this machine; the message says what to do."""


class PoolCrashed(RuntimeError):
    """A pool process died while running the task (the task may be poison)."""


def _alive(process: psutil.Process) -> bool:
    try:
        # is_running() also tells a reused pid apart; a zombie is dead to us.
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _exit_with(owner: psutil.Process) -> None:
    while _alive(owner):
        time.sleep(OWNER_CHECK_S)
    os._exit(1)


def cap_memory(memory_mb: int) -> bool:
    """Cap this process's address space at `memory_mb` (RLIMIT_AS): past it, allocations fail
    with MemoryError instead of the machine swapping or the OOM killer picking a victim. False
    where the platform cannot enforce it (no `resource` module, or no RLIMIT_AS)."""
    if sys.platform == "win32":  # no `resource` module
        return False
    import resource

    limit = getattr(resource, "RLIMIT_AS", None)
    if limit is None:
        return False
    try:
        _, hard = resource.getrlimit(limit)
        cap = memory_mb * 1024 * 1024
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(limit, (cap, hard))
    except (ValueError, OSError):
        return False
    return True


def prepare_pool_process(
    owner_pid: int, pillow_blocks_max: int | None = None, memory_mb: int = 0
) -> None:
    """Pool process initializer: deaf to stop signals, so it ends by itself when the worker that
    owns the pool is gone (killed with -9, its pool would otherwise stay blocked for ever).

    With `pillow_blocks_max`, Pillow keeps that many freed image memory blocks for the next
    image (its own PILLOW_BLOCKS_MAX). Keeping none, Pillow's default and ours, is the faster:
    glibc keeps freed image memory in its heap and reuses it as it is, while Pillow resizes a
    kept block to the next image's size with `realloc`, which for a large block remaps it and
    has the kernel fault its pages in again, task after task.

    With `memory_mb`, the process's memory is capped (see `cap_memory`)."""
    ignore_stop_signals()
    if memory_mb and not cap_memory(memory_mb):
        log.warning("POOL_MEMORY_MB=%d is not enforced on this platform", memory_mb)
    if pillow_blocks_max is not None:
        from PIL import Image

        Image.core.set_blocks_max(pillow_blocks_max)
    try:
        owner = psutil.Process(owner_pid)
    except psutil.NoSuchProcess:
        os._exit(1)
    threading.Thread(target=_exit_with, args=(owner,), name="sd-owner-watch", daemon=True).start()


def ignore_stop_signals() -> None:
    """Make this (forkserver or pool) process deaf to SIGINT and SIGTERM: Ctrl-C and systemd
    signal the whole process group, but only the worker decides when its pool stops, so a
    draining worker can still finish its tasks. The pool stops through `Executor.stop()`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def pool_size() -> int:
    """One process per core this process may use."""
    if sys.platform == "linux":
        return max(1, len(os.sched_getaffinity(0)))
    if sys.platform == "win32":
        return max(1, min(os.cpu_count() or 1, WINDOWS_MAX_WORKERS))
    return max(1, os.cpu_count() or 1)


def _noop() -> None:
    """Run once by every pool process at start: the pool is up when each has answered."""


def fast_path_available() -> bool:
    """True where the event-loop pool (sd_worker.loop_pool) runs: Linux, with a forkserver."""
    return sys.platform == "linux" and "forkserver" in multiprocessing.get_all_start_methods()


class Executor:
    """A process pool whose dying process fails only the task it ran, and that task only after
    it killed a process of its own. On Linux the event-loop pool (sd_worker.loop_pool, with a
    forkserver); elsewhere, or with `portable` (PORTABLE_RUNTIME), sd_worker.portable_pool
    with spawn."""

    def __init__(
        self,
        workers: int | None = None,
        preload: list[str] | None = None,
        pillow_blocks_max: int | None = None,
        *,
        portable: bool = False,
        memory_mb: int = 0,
        time_limit_s: float | None = None,
    ) -> None:
        """`pillow_blocks_max`: see `prepare_pool_process` (None leaves Pillow's own).
        `memory_mb` caps each pool process's memory (0: no cap); a task past `time_limit_s`
        fails with TaskTimedOut and its process is replaced (None: no limit)."""
        self.workers = workers or pool_size()
        self.preload = preload or []
        self.pillow_blocks_max = pillow_blocks_max
        self.memory_mb = memory_mb
        self.time_limit_s = time_limit_s or None
        self.portable = portable or not fast_path_available()
        self._pool: Pool | None = None
        self._alone = asyncio.Semaphore(self.workers)

    @classmethod
    def for_settings(cls, settings: Settings) -> Executor:
        """The pool a worker runs with these settings (the embedded local worker's too)."""
        return cls(
            preload=settings.task_modules,
            pillow_blocks_max=settings.pillow_blocks_max,
            portable=settings.portable_runtime,
            memory_mb=settings.pool_memory_mb,
            time_limit_s=settings.task_time_limit_s,
        )

    @property
    def capacity(self) -> int:
        """How many calls the pool holds at once (each process runs one, the next waits)."""
        return self.workers * DEPTH

    @property
    def kind(self) -> str:
        """How the pool runs, for the start-up log line."""
        if self.portable:
            return "spawn, concurrent.futures (portable)"
        return "forkserver, driven by the event loop (Linux fast path)"

    def start(self) -> None:
        """Create the pool (never fork: forking a threaded asyncio process is unsafe)."""
        self._preloaded = ["PIL.Image", "sd_worker.ops", *self.preload]
        self._context: BaseContext
        if self.portable:
            self._context = multiprocessing.get_context("spawn")
            try:  # ProcessPoolExecutor needs working POSIX semaphores (sem_open) off Windows
                multiprocessing.synchronize.Lock(ctx=self._context)
            except (ImportError, NotImplementedError, OSError) as exc:
                raise PoolUnavailable(
                    f"this system cannot run a process pool ({exc}): multiprocessing needs "
                    "working semaphores (on Linux, a writable /dev/shm)"
                ) from exc
        else:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["sd_worker.forkserver_init", *self._preloaded])
            self._context = context
        self._pool = self._new_pool()

    def _new_pool(self, workers: int | None = None, *, respawn: bool = True) -> Pool:
        workers = workers or self.workers
        initargs = (os.getpid(), self.pillow_blocks_max, self.memory_mb)
        if sys.platform == "linux" and not self.portable:
            from sd_worker.loop_pool import LoopPool  # imported where it runs: not on Windows

            return LoopPool(
                workers,
                self._context,
                initializer=prepare_pool_process,
                initargs=initargs,
                respawn=respawn,
                time_limit_s=self.time_limit_s,
            )
        return PortablePool(
            workers,
            self._context,
            prepare_pool_process,
            initargs,
            respawn=respawn,
            preload=self._preloaded,
            time_limit_s=self.time_limit_s,
        )

    async def ready(self) -> None:
        """Wait until every pool process has started and run a call (after `start()`); a pool
        that cannot start raises here, at start-up, not on the first task."""
        if self._pool is None:
            raise RuntimeError("Executor used before start()")
        pool = self._pool
        try:
            await asyncio.gather(*(pool.submit(_noop) for _ in range(self.workers)))
        except BrokenProcessPool as exc:
            raise PoolUnavailable(
                f"the process pool ({self.kind}) could not start: {exc}. Check that TASK_MODULES "
                "import in a fresh Python process; PORTABLE_RUNTIME=true takes the portable pool"
            ) from exc

    def hand_back(self) -> int:
        """Fail with NotStarted every call no pool process has started, now and from now on
        (a draining worker returns those tasks to the queue); how many were waiting."""
        return self._pool.hand_back() if self._pool is not None else 0

    def stop(self) -> None:
        """Shut the pool down (idempotent)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in a pool process; PoolCrashed if it kills even a process of its own."""
        if self._pool is None:
            raise RuntimeError("Executor used before start()")
        try:
            result: T = await self._pool.submit(fn, *args)
            return result
        except BrokenProcessPool:
            pass
        # The pool replaced the dead process already. It died running this task, which may
        # have killed it or may have been shot with it (the OOM killer, a stray kill): run it
        # again alone, so only a task that crashes a process by itself fails.
        return await self._run_alone(fn, *args)

    async def _run_alone(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._alone:
            pool = self._new_pool(1, respawn=False)
            try:
                result: T = await pool.submit(fn, *args)
                return result
            except BrokenProcessPool as exc:
                raise PoolCrashed("a pool process died while running the task") from exc
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
