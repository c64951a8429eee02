"""Running one task: check it, fetch its input, compute in the pool, hand the outcome back.

Shared by `sd-worker --async` (over HTTP) and the coordinator's embedded local worker (in
process): only the `Link` differs.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import ValidationError

from sd_common.images import ImageRejected
from sd_common.messages import IngestAnswer, TaskMessage, TaskOutcome
from sd_common.pipeline import PipelineError
from sd_common.settings import Settings
from sd_common.tasks import IMAGE_TASK, get_task_type
from sd_worker.cache import InputCache, InputMismatch
from sd_worker.client import CoordinatorRejected
from sd_worker.executor import Executor, PoolCrashed
from sd_worker.ops import process_image_file

log = logging.getLogger("sd.worker.processing")

STARTED_MAX = 1000


class Link(Protocol):
    """How a worker reaches the coordinator's storage."""

    async def fetch_input(self, sha256: str) -> bytes: ...
    async def post_image(
        self, task_id: str, worker: str, png: bytes, duration_s: float = 0
    ) -> IngestAnswer: ...
    async def post_outcome(self, outcome: TaskOutcome) -> IngestAnswer: ...


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

    @property
    def current_task(self) -> str | None:
        """The most recently started task still running, if any."""
        return next(reversed(self.current), None)

    async def handle(self, message: TaskMessage) -> None:
        """Run the task and store its outcome; RetryLater if it must go back to the queue."""
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
        except CoordinatorRejected as exc:
            # 404: the coordinator no longer knows the task (its data was reset); drop it.
            log.warning("coordinator refused the outcome of task %s: %s", message.task_id, exc)
        finally:
            del self.current[message.task_id]
            self.on_change()

    async def _report(
        self, message: TaskMessage, *, error: str, started: float, retry: bool = False
    ) -> None:
        log.info("task %s %s: %s", message.task_id, "will retry" if retry else "failed", error)
        await self.link.post_outcome(
            TaskOutcome(
                task_id=message.task_id, worker=self.name, error=error[:4000], retry=retry,
                duration_s=time.perf_counter() - started,
            )
        )  # fmt: skip

    async def _run(self, message: TaskMessage, started: float) -> None:
        if message.type == IMAGE_TASK:
            png = await self._run_image(message)
            duration_s = time.perf_counter() - started
            await self.link.post_image(message.task_id, self.name, png, duration_s)
            return
        output = await self._run_custom(message)
        await self.link.post_outcome(
            TaskOutcome(task_id=message.task_id, worker=self.name, output=output,
                        duration_s=time.perf_counter() - started)
        )  # fmt: skip

    async def _run_image(self, message: TaskMessage) -> bytes:
        if message.input is None:
            raise TaskFailed("image task without input")
        sha256 = message.input.sha256
        try:
            path = await self.cache.path(sha256, self.link.fetch_input)
        except InputMismatch as exc:
            raise RetryLater(str(exc)) from exc
        except CoordinatorRejected as exc:
            raise TaskFailed(f"input unavailable: {exc.detail}") from exc
        s = self.settings
        try:
            # The pool process reads the cached file itself: the input is never pickled
            # through the pool's pipe.
            return await self.executor.run(
                process_image_file, str(path), message.ops, s.png_compress_level,
                s.max_image_pixels,
            )  # fmt: skip
        except FileNotFoundError as exc:  # the cache folder was cleaned under us
            self.cache.forget(sha256)
            raise RetryLater(f"cached input {sha256[:12]}… vanished") from exc
        except (ImageRejected, PipelineError) as exc:
            raise TaskFailed(str(exc)) from exc

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
        except PoolCrashed:
            raise
        except Exception as exc:  # the task's own code failed: deterministic, report it
            raise TaskFailed(f"{type(exc).__name__}: {exc}") from exc
