"""Running one task: check it, fetch its input, compute in the pool, hand the outcome back.

Shared by `sd-worker --async` (over HTTP) and the coordinator's embedded local worker (in
process): only the `Link` differs.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Container
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sd_common import storage
from sd_common.images import ImageRejected
from sd_common.messages import TaskMessage, TaskOutcome
from sd_common.pipeline import PipelineError
from sd_common.settings import Settings
from sd_common.tasks import IMAGE_TASK, get_task_type
from sd_worker.cache import InputCache, InputMismatch
from sd_worker.executor import Executor, PoolCrashed
from sd_worker.link import Link, LinkRefused
from sd_worker.ops import process_image_file, process_image_into
from sd_worker.pool_limits import NotStarted, TaskTimedOut
from sd_worker.shared import SharedStorage

log = logging.getLogger("sd.worker.processing")

STARTED_MAX = 1000


class RetryLater(Exception):
    """This attempt failed for a reason that may pass: return the message to the queue."""


class TaskFailed(Exception):
    """The task itself is bad (deterministic): report it failed, never retry."""


class TaskProcessor:
    """Processes task messages; `handle()` returns once the outcome is stored."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        link: Link,
        cache: InputCache,
        executor: Executor,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.link = link
        self.cache = cache
        self.executor = executor
        self.on_change = on_change
        self.current: dict[str, float] = {}
        # Started since the worker last told the coordinator (it marks them running together).
        self.started: deque[str] = deque(maxlen=STARTED_MAX)
        self.processed = 0
        self.failed = 0
        # The coordinator's DATA_DIR when this worker sees it (SHARED_STORAGE=auto).
        self.shared: SharedStorage | None = None
        # Jobs the coordinator cancelled: their tasks are acked without being run.
        self.cancelled_jobs: Container[str] = frozenset()
        self.skipped = 0
        self._disk_full_said = storage.Every(storage.DISK_FULL_SAY_S)

    @property
    def current_task(self) -> str | None:
        """The most recently started task still running, if any."""
        return next(reversed(self.current), None)

    async def handle(self, message: TaskMessage) -> None:
        """Run the task and store its outcome; RetryLater if it must go back to the queue."""
        if message.job_id in self.cancelled_jobs:
            self.skipped += 1  # the coordinator already marked it cancelled
            return
        self.current[message.task_id] = time.monotonic()
        self.started.append(message.task_id)
        self.on_change()
        started = time.perf_counter()
        try:
            try:
                await self._run(message, started)
                self.processed += 1
            except TaskFailed as exc:
                self.failed += 1
                await self._report(message, error=str(exc), started=started)
            except PoolCrashed as exc:
                await self._report(message, error=str(exc), started=started, retry=True)
                raise RetryLater(str(exc)) from exc
            except NotStarted as exc:  # draining: back to the queue for another worker
                raise RetryLater(str(exc)) from exc
            except (RetryLater, LinkRefused):
                raise
            except Exception as exc:
                # Not one of the expected task errors (a disk that refuses writes, a bug): this
                # attempt fails with its reason and the task goes back to the queue, where the
                # delivery limit ends it if it keeps failing. The consuming loop goes on.
                reason = f"unexpected {type(exc).__name__}: {exc}"
                if not storage.is_disk_full(exc):
                    log.error("task %s: %s", message.task_id, reason, exc_info=exc)
                    await self._report(message, error=reason, started=started, retry=True)
                    raise RetryLater(reason) from exc
                # A full disk fails every task alike until it has room: one line now and then
                # (its traceback tells nothing more).
                if self._disk_full_said.due():
                    log.error(
                        "task %s: %s: the disk is full, so tasks go back to the queue until it "
                        "has room (said again every %.0f s while it lasts)",
                        message.task_id,
                        reason,
                        storage.DISK_FULL_SAY_S,
                    )
                await self._report(message, error=reason, started=started, retry=True, quiet=True)
                raise RetryLater(reason) from exc
        except LinkRefused as exc:
            # 404: the coordinator no longer knows the task (its data was reset); drop it.
            log.warning("coordinator refused the outcome of task %s: %s", message.task_id, exc)
        finally:
            del self.current[message.task_id]
            self.on_change()

    async def _report(
        self,
        message: TaskMessage,
        *,
        error: str,
        started: float,
        retry: bool = False,
        quiet: bool = False,
    ) -> None:
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "task %s %s: %s",
            message.task_id,
            "will retry" if retry else "failed",
            error,
        )
        await self.link.post_outcome(
            TaskOutcome(
                task_id=message.task_id,
                worker=self.name,
                error=error[:4000],
                retry=retry,
                duration_s=time.perf_counter() - started,
            )
        )

    async def _run(self, message: TaskMessage, started: float) -> None:
        if message.type == IMAGE_TASK:
            await self._run_image(message, started)
            return
        output = await self._run_custom(message)
        await self.link.post_outcome(
            TaskOutcome(
                task_id=message.task_id,
                worker=self.name,
                output=output,
                duration_s=time.perf_counter() - started,
            )
        )

    async def _run_image(self, message: TaskMessage, started: float) -> None:
        if message.input is None:
            raise TaskFailed("image task without input")
        sha256 = message.input.sha256
        shared = self.shared
        path = await self._input_path(sha256, shared)
        s = self.settings
        args = (message.ops, s.png_compress_level, s.max_image_pixels)
        # Under a name of its own: it becomes the result only if the coordinator accepts it.
        name = storage.incoming_name(message.task_id)
        try:
            # The pool process reads the input file itself: its bytes never cross the pool's
            # pipe. With shared storage it also writes the result where the coordinator keeps
            # it, so the PNG crosses neither the pipe nor HTTP.
            if shared is None:
                png = await self.executor.run(process_image_file, str(path), *args)
            else:
                await self.executor.run(
                    process_image_into, str(path), str(shared.results_dir), name, *args
                )
        except FileNotFoundError as exc:  # the cached input (or a shared folder) vanished
            self.cache.forget(sha256)
            if shared is not None:
                self._stop_sharing(f"{exc.filename} vanished")
            raise RetryLater(f"input {sha256[:12]}… or its result folder vanished") from exc
        except (ImageRejected, PipelineError, TaskTimedOut) as exc:
            raise TaskFailed(str(exc)) from exc
        except MemoryError as exc:
            raise TaskFailed(self._out_of_memory()) from exc
        duration_s = time.perf_counter() - started
        if shared is None:
            await self.link.post_image(message.task_id, self.name, png, duration_s)
            return
        outcome = TaskOutcome(
            task_id=message.task_id, worker=self.name, result=name, duration_s=duration_s
        )
        try:
            await self.link.post_outcome(outcome)
        except LinkRefused as exc:
            if exc.status != 422:
                raise
            self._stop_sharing(exc.detail)
            raise RetryLater("the coordinator did not find the result file") from exc

    async def _input_path(self, sha256: str, shared: SharedStorage | None) -> Path:
        if shared is not None and (path := await shared.input_path(sha256)) is not None:
            return path
        try:
            return await self.cache.path(sha256, self.link.fetch_input)
        except InputMismatch as exc:
            raise RetryLater(str(exc)) from exc
        except LinkRefused as exc:
            raise TaskFailed(f"input unavailable: {exc.detail}") from exc

    def _out_of_memory(self) -> str:
        cap = self.settings.pool_memory_mb
        limit = f"the limit of POOL_MEMORY_MB={cap}" if cap else "the memory it could get"
        return f"the task ran out of memory ({limit}); its pool process was replaced"

    def _stop_sharing(self, why: str) -> None:
        if self.shared is not None:
            self.shared = None
            log.warning(
                "stopped writing results into the coordinator's DATA_DIR (%s); "
                "sending them over HTTP until the worker registers again",
                why,
            )

    async def _run_custom(self, message: TaskMessage) -> Any:
        task_type = get_task_type(message.type)
        if task_type is None:
            raise TaskFailed(f"unknown task type {message.type!r} on worker {self.name}")
        try:
            params = task_type.payload.model_validate(message.params).model_dump(mode="json")
        except ValidationError as exc:
            raise TaskFailed(f"bad payload: {exc.errors()[0]['msg']}") from exc
        try:
            if task_type.cpu:
                return await self.executor.run(task_type.run, params)
            return await task_type.run(params)
        except (PoolCrashed, NotStarted):
            raise
        except MemoryError as exc:
            raise TaskFailed(self._out_of_memory()) from exc
        except Exception as exc:  # the task's own code failed: deterministic, report it
            raise TaskFailed(f"{type(exc).__name__}: {exc}") from exc
