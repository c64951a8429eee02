"""A process pool driven by the event loop: one pipe per process, no helper threads.

`concurrent.futures.ProcessPoolExecutor` hands every call through a manager thread and a
queue-feeder thread, then wakes the event loop from a third: each task costs the worker's main
process several thread wake-ups, each landing on a core a Pillow process was using. Here the
loop writes the pickled call straight into the process's pipe and reads the result when the
pipe is readable, so a task costs one write and one wake-up.

Each process keeps at most `DEPTH` calls: one running and the next waiting in its pipe, so it
never idles while the loop gets a core back. When a process dies, only the call it was running
fails (`BrokenProcessPool`); the waiting one goes to the fresh process that replaces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import struct
import sys
from collections import deque
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from typing import Any

from sd_worker.pool_limits import NotStarted, TaskTimedOut, timed_out_message

# Non-blocking pipes watched by add_reader: POSIX loops only (the Executor takes it on Linux).
assert sys.platform != "win32", "sd_worker.loop_pool is not for Windows: see portable_pool"

log = logging.getLogger("sd.worker.pool")

DEPTH = 2
STOP_TIMEOUT_S = 30.0
_HEADER = struct.Struct("!i")  # multiprocessing.Connection's framing
_LONG = struct.Struct("!Q")
READ_BYTES = 1 << 20  # at most this much is read from a pipe at once
READY = b"ready"  # a pool process's first frame; every later one is a pickled answer

Call = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]


def serve(
    conn: Connection, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]
) -> None:
    """A pool process: run the calls that arrive on `conn` in order, answer each one."""
    if initializer is not None:
        initializer(*initargs)
    try:  # ready: the time limit of the first call starts now, not while this process starts
        conn.send_bytes(READY)
    except OSError:
        return
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not data:  # the pool stops this process
            return
        fn, args = pickle.loads(data)
        try:
            answer: tuple[bool, Any, bool] = (True, fn(*args), False)
        except BaseException as exc:
            # Out of memory, the process may be left fragmented or half-broken: it answers,
            # then ends, and the pool starts a fresh one (the retire flag, last).
            answer = (False, exc, isinstance(exc, MemoryError))
        try:
            payload = pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an exception or result that does not pickle
            error = RuntimeError(f"{type(exc).__name__}: {exc}")
            payload = pickle.dumps((False, error, answer[2]))
        try:
            conn.send_bytes(payload)
        except OSError:  # the worker is gone: nobody waits for this answer
            return
        if answer[2]:
            return


class _Worker:
    """One pool process, its pipe, and the calls it holds (oldest = the running one)."""

    def __init__(self, pool: LoopPool) -> None:
        self.pool = pool
        parent, child = pool.context.Pipe(duplex=True)
        self.conn = parent
        self.process = pool.context.Process(
            target=serve,
            args=(child, pool.initializer, pool.initargs),
            daemon=True,
            name="sd-pool",
        )
        self.process.start()
        child.close()  # ours closed: the process's death reads as end of file
        self.calls: deque[Call] = deque()
        self.buffer = bytearray()
        self.out = bytearray()  # frames not yet taken by the pipe
        self.writing = False
        self.fd = parent.fileno()
        self.ready = False  # its READY frame arrived
        self.retiring = False  # answered its last call and ends (out of memory)
        self.deadline: asyncio.TimerHandle | None = None
        os.set_blocking(self.fd, False)
        pool.loop.add_reader(self.fd, self._readable)

    def send(self, call: Call) -> None:
        fn, args, _ = call
        self.calls.append(call)
        data = pickle.dumps((fn, args), pickle.HIGHEST_PROTOCOL)
        self._write(data)
        if len(self.calls) == 1:
            self._time_head()

    def _time_head(self) -> None:
        """The oldest call is the running one: it gets the pool's time limit from now."""
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        limit = self.pool.time_limit_s
        if limit and self.calls and self.ready:
            self.deadline = self.pool.loop.call_later(limit, self._overdue, self.calls[0][2])

    def _overdue(self, future: asyncio.Future[Any]) -> None:
        self.deadline = None
        if not self.calls or self.calls[0][2] is not future or future.done():
            return
        limit = self.pool.time_limit_s or 0
        future.set_exception(TaskTimedOut(timed_out_message(limit)))
        log.warning("a task ran longer than %g s: killed its pool process", limit)
        # Its end of file settles the calls behind it and starts a fresh process.
        with contextlib.suppress(OSError):
            self.process.kill()

    def _write(self, data: bytes) -> None:
        # Never block: a process may be writing a large result to us at the same moment, and
        # two blocked writers on one pipe would wait for each other for ever.
        self.out += _HEADER.pack(len(data)) + data
        if not self.writing:
            self._flush()

    def _flush(self) -> None:
        try:
            while self.out:
                del self.out[: os.write(self.fd, self.out)]
        except BlockingIOError:
            pass
        except OSError:  # the process died; reading its end of file settles its calls
            self.out.clear()
        if self.out and not self.writing:
            self.pool.loop.add_writer(self.fd, self._flush)
            self.writing = True
        elif not self.out and self.writing:
            self.pool.loop.remove_writer(self.fd)
            self.writing = False

    def _readable(self) -> None:
        try:
            # Into one buffer kept for the pool's life: `os.read` would allocate (and a large
            # result fault in) a fresh megabyte for every read.
            count = os.readv(self.fd, [self.pool.read_buffer])
        except BlockingIOError:
            return
        except OSError:
            count = 0
        if not count:
            self.pool._died(self)
            return
        self.buffer += self.pool.read_buffer[:count]
        while True:
            frame = self._next_frame()
            if frame is None:
                return
            if not self.ready:
                self.ready = True
                del self.buffer[: frame[1]]
                self._time_head()
                continue
            future = self.calls.popleft()[2]
            try:
                # Unpickled where it lies: a result image is copied once, into its bytes.
                with memoryview(self.buffer) as view, view[frame[0] : frame[1]] as answer:
                    ok, value, retiring = pickle.loads(answer)
            except Exception as exc:  # e.g. an exception class that cannot be rebuilt here
                ok, value = False, RuntimeError(f"the task's answer could not be read: {exc}")
                retiring = False
            del self.buffer[: frame[1]]
            if not future.done():
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            if retiring:
                self.retiring = True  # its end of file follows; nothing more goes to it
                continue
            self._time_head()
            self.pool._dispatch()

    def _next_frame(self) -> tuple[int, int] | None:
        """Where the first whole frame's body lies in the buffer (start, end), if one is there."""
        if len(self.buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self.buffer)
        start = _HEADER.size
        if size == -1:
            if len(self.buffer) < start + _LONG.size:
                return None
            (size,) = _LONG.unpack_from(self.buffer, start)
            start += _LONG.size
        if len(self.buffer) < start + size:
            return None
        return start, start + size

    def close(self, *, stop: bool) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.pool.loop.remove_reader(self.fd)
        if self.writing:
            self.pool.loop.remove_writer(self.fd)
        if stop and not self.out:
            # Best effort: closing our end stops the process as well, after its current call
            # (its next read ends, or its answer finds nobody).
            with contextlib.suppress(OSError):
                os.write(self.fd, _HEADER.pack(0))
        self.out.clear()
        self.conn.close()


class LoopPool:
    """`submit(fn, *args)` → awaitable result; `shutdown()` ends the processes."""

    def __init__(
        self,
        workers: int,
        context: Any,  # a multiprocessing context (forkserver or spawn)
        initializer: Callable[..., None] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        respawn: bool = True,
        time_limit_s: float | None = None,
    ) -> None:
        """`time_limit_s`: a call running longer fails with TaskTimedOut, and its process is
        killed and replaced."""
        self.workers = workers
        self.respawn = respawn
        self.time_limit_s = time_limit_s
        self.context = context
        self.initializer = initializer
        self.initargs = initargs
        self.loop = asyncio.get_running_loop()
        # Every pipe is read into this buffer on the loop's one thread, then copied out.
        self.read_buffer = memoryview(bytearray(READ_BYTES))
        self._waiting: deque[Call] = deque()
        self._closed = False
        self._handing_back = False
        # Started now, so the first task does not wait for a process to start.
        self._procs: list[_Worker] = [_Worker(self) for _ in range(workers)]

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue `fn(*args)` for a pool process; the future fails with BrokenProcessPool if
        the process running it dies."""
        if self._closed:
            raise RuntimeError("LoopPool used after shutdown()")
        future: asyncio.Future[Any] = self.loop.create_future()
        if self._handing_back:
            future.set_exception(NotStarted("the worker is draining"))
            return future
        self._waiting.append((fn, args, future))
        self._dispatch()
        return future

    def _dispatch(self) -> None:
        while self._waiting and self._procs and not self._closed:
            ready = [w for w in self._procs if not w.retiring]
            if not ready:
                return
            worker = min(ready, key=lambda w: len(w.calls))
            if len(worker.calls) >= DEPTH:
                return
            fn, args, future = self._waiting.popleft()
            if future.cancelled():
                continue
            try:
                worker.send((fn, args, future))
            except Exception as exc:  # the call does not pickle, or the pipe broke
                worker.calls.pop()
                if not future.done():
                    future.set_exception(exc)

    def _died(self, worker: _Worker) -> None:
        worker.close(stop=False)
        self._procs.remove(worker)
        worker.process.join(timeout=1)
        code = worker.process.exitcode
        if worker.calls and not worker.retiring:
            _, _, future = worker.calls.popleft()  # the call it was running killed it
            if not future.done():
                future.set_exception(
                    BrokenProcessPool(
                        f"a pool process died (exit code {code}) while running the task"
                    )
                )
        # The call waiting behind it never started: it goes first to a fresh process.
        self._waiting.extendleft(reversed(worker.calls))
        worker.calls.clear()
        if self._closed or not self.respawn:
            return
        if worker.retiring:
            log.info("a pool process ran out of memory; started a fresh one")
        else:
            log.warning("a pool process died (exit code %s); started a fresh one", code)
        self._procs.append(_Worker(self))
        self._dispatch()

    def hand_back(self) -> int:
        """From now on fail with NotStarted every call no process has started (those waiting
        and those to come); the calls in processes finish. How many were waiting."""
        self._handing_back = True
        return self._fail_waiting(NotStarted("the worker is draining"))

    def _fail_waiting(self, error: Exception) -> int:
        """Fail every call waiting for a process with `error`; how many there were."""
        waiting = [future for _, _, future in self._waiting if not future.done()]
        self._waiting.clear()
        for future in waiting:
            future.set_exception(error)
        return len(waiting)

    def shutdown(self, wait: bool = True, cancel_futures: bool = True) -> None:
        """Stop the processes (each finishes the call it is running first when `wait`)."""
        if self._closed:
            return
        self._closed = True
        error = RuntimeError("the process pool stopped")
        for worker in self._procs:
            for _, _, future in worker.calls:
                if cancel_futures and not future.done():
                    future.set_exception(error)
            worker.close(stop=True)
        self._fail_waiting(error)
        for worker in self._procs:
            if not wait:  # it ends after its current call; reap it off the loop
                self.loop.run_in_executor(None, worker.process.join, STOP_TIMEOUT_S)
                continue
            worker.process.join(STOP_TIMEOUT_S)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(1)
        self._procs.clear()
