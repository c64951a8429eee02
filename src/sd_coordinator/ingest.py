"""Storing what workers report: results, failures, transient attempts and dead letters."""

from __future__ import annotations

import logging

from sd_common.messages import IngestAnswer, TaskOutcome
from sd_coordinator.blobs import Blobs
from sd_coordinator.errors import Invalid, NotFound
from sd_coordinator.rates import RateWindow
from sd_coordinator.store import Finish, Ingest, Store

log = logging.getLogger("sd.coordinator.ingest")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Ingestor:
    """Stores each task's outcome exactly once (idempotent by task_id) and counts throughput."""

    def __init__(self, store: Store, blobs: Blobs, rates: RateWindow) -> None:
        self.store = store
        self.blobs = blobs
        self.rates = rates

    def _answer(self, task_id: str, result: Ingest) -> IngestAnswer:
        if result is Ingest.UNKNOWN:
            raise NotFound(f"unknown task {task_id}")
        if result is Ingest.STORED:
            self.rates.record()
        return IngestAnswer(task_id=task_id, stored=True, duplicate=result is Ingest.DUPLICATE)

    async def image_result(self, task_id: str, worker: str, png: bytes) -> IngestAnswer:
        """Store a result image, then mark its task done."""
        if not png.startswith(PNG_SIGNATURE):
            raise Invalid("a result image must be a PNG")
        state = await self.store.task_state(task_id)
        if state is None:
            raise NotFound(f"unknown task {task_id}")
        if state in ("done", "failed"):
            return IngestAnswer(task_id=task_id, stored=True, duplicate=True)
        # The file lands before the row that names it, so a crash in between leaves no dangling
        # reference; a redelivered task rewrites the same name atomically.
        filename = await self.blobs.put_result(task_id, png)
        result = await self.store.finish(Finish(task_id, worker, failed=False, result=filename))
        return self._answer(task_id, result)

    async def outcome(self, outcome: TaskOutcome) -> IngestAnswer:
        """Store a custom task's output, a failure, or note a transient failed attempt."""
        if outcome.retry:
            await self.store.note_attempt(outcome.task_id, outcome.worker, outcome.error or "")
            return IngestAnswer(task_id=outcome.task_id, stored=True)
        failed = outcome.error is not None
        result = await self.store.finish(
            Finish(outcome.task_id, outcome.worker, failed, output=outcome.output,
                   error=outcome.error)
        )  # fmt: skip
        return self._answer(outcome.task_id, result)

    async def dead_letter(self, task_id: str, reason: str) -> None:
        """The broker gave up on a task: it ends failed, keeping the last attempt's error."""
        result = await self.store.finish(Finish(task_id, None, failed=True, error=reason))
        if result is Ingest.STORED:
            self.rates.record()
            log.warning("task %s failed: %s", task_id, reason)
