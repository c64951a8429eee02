"""A process pool for every platform: `concurrent.futures.ProcessPoolExecutor` awaited through
`asyncio.wrap_future`, for event loops without `add_reader` on pipes (Windows's Proactor loop)
and start methods without a forkserver (spawn on Windows and macOS).

It has LoopPool's interface (`submit`, `shutdown`, `respawn`), so the Executor drives either. A
dying process breaks a ProcessPoolExecutor and every call in it; the calls fail with
`BrokenProcessPool`, a fresh pool takes the next ones, and the Executor runs each failed call
again alone, so only the call that kills a process by itself fails, as with LoopPool.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import pickle
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from sd_worker.pool_limits import NotStarted, TaskTimedOut, timed_out_message

log = logging.getLogger("sd.worker.pool")

DEPTH = 2  # calls a process is counted to hold, as in LoopPool (one running, one waiting)
STOP_TIMEOUT_S = 30.0


@contextlib.contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    """Start processes with SIGINT and SIGTERM blocked (POSIX): they inherit the mask, so a
    Ctrl-C to the process group cannot interrupt one still importing (with a traceback) before
    its initializer makes it deaf to them. Here the signals wait, to be handled right after."""
    if sys.platform == "win32":
        yield
        return
    stop = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _initialize(
    preload: Sequence[str], initializer: Callable[..., None] | None, initargs: tuple[Any, ...]
) -> None:
    """A spawned process starts empty: import what a forkserver would have preloaded."""
    for module in preload:
        importlib.import_module(module)
    if initializer is not None:
        initializer(*initargs)


def _nothing() -> None:
    """Submitted once a process when a pool is made: ProcessPoolExecutor starts its processes
    only for calls, and a task should not wait for one to start."""


def _run(fn: Callable[..., Any], args: tuple[Any, ...]) -> bytes:
    """In a pool process: run the call and pickle its answer here. An answer that does not
    pickle or unpickle then fails only its own call; inside ProcessPoolExecutor it would
    break the whole pool."""
    try:
        answer: tuple[bool, Any] = (True, fn(*args))
    except BaseException as exc:
        answer = (False, exc)
    try:
        return pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        return pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")))


def _read(payload: bytes) -> Any:
    try:
        ok, value = pickle.loads(payload)
    except Exception as exc:  # e.g. an exception class that cannot be rebuilt here
        raise RuntimeError(f"the task's answer could not be read: {exc}") from None
    if ok:
        return value
    raise value


class PortablePool:
    """`await submit(fn, *args)` → result; `shutdown()` ends the processes."""

    def __init__(
        self,
        workers: int,
        context: Any,  # a multiprocessing context (spawn)
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        respawn: bool = True,
        preload: Sequence[str] = (),
        time_limit_s: float | None = None,
    ) -> None:
        """`time_limit_s`: a call not answered that long after it was submitted fails with
        TaskTimedOut, and the pool's processes are killed and replaced (ProcessPoolExecutor
        does not say which process runs which call; the other calls fail with
        BrokenProcessPool, which the Executor runs again alone)."""
        self.workers = workers
        self.time_limit_s = time_limit_s
        self.context = context
        self.respawn = respawn
        self._initargs = (tuple(preload), initializer, initargs)
        self._closed = False
        # At most one call a process in the pool's own queue, so a call's time limit counts
        # from when a process takes it, not while it waits behind others.
        self._slots = asyncio.Semaphore(workers)
        self._handing_back = False
        self._waiting = 0  # calls waiting for a slot
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            self.workers,
            mp_context=self.context,
            initializer=_initialize,
            initargs=self._initargs,
        )
        with _stop_signals_blocked():
            for _ in range(self.workers):  # each call while none is idle starts a process
                pool.submit(_nothing)
        return pool

    async def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` in a pool process; BrokenProcessPool if a process of the pool died
        while the call was there."""
        if self._closed:
            raise RuntimeError("PortablePool used after shutdown()")
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            if self._handing_back:
                raise NotStarted("the worker is draining")
            return await self._submit(fn, args)
        finally:
            self._slots.release()

    def hand_back(self) -> int:
        """From now on fail with NotStarted every call no process has started (those waiting
        for a slot and those to come); the calls in processes finish. How many were waiting."""
        self._handing_back = True
        return self._waiting

    async def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        pool = self._pool
        try:
            async with asyncio.timeout(self.time_limit_s):
                payload = await asyncio.wrap_future(pool.submit(_run, fn, args))
        except BrokenProcessPool:
            self._replace(pool)
            raise
        except TimeoutError:
            assert self.time_limit_s is not None
            log.warning(
                "a task ran longer than %g s: killed the pool's processes", self.time_limit_s
            )
            for process in list((pool._processes or {}).values()):
                with contextlib.suppress(OSError):
                    process.kill()
            self._replace(pool)
            raise TaskTimedOut(timed_out_message(self.time_limit_s)) from None
        return _read(payload)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """The first call to see `broken` puts a fresh pool in its place."""
        if broken is not self._pool or self._closed:
            return
        broken.shutdown(wait=False, cancel_futures=True)
        if self.respawn:
            log.warning("a pool process died; started a fresh pool")
            self._pool = self._new_pool()
        else:
            self._closed = True

    def shutdown(self, wait: bool = True, cancel_futures: bool = True) -> None:
        """Stop the processes (each finishes the call it is running first, for up to
        STOP_TIMEOUT_S when `wait`)."""
        if self._closed:
            return
        self._closed = True
        # ProcessPoolExecutor's own wait has no time limit: join each process here instead.
        processes = list((self._pool._processes or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=cancel_futures)
        if not wait:
            return
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1)
