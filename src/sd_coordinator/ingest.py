"""Storing what workers report: results, failures, transient attempts and dead letters."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from sd_common.messages import IngestAnswer, TaskOutcome
from sd_coordinator.blobs import PNG_SIGNATURE, Blobs, ResultData
from sd_coordinator.errors import Invalid, NotFound, ServiceError
from sd_coordinator.metrics import Metrics
from sd_coordinator.rates import RateWindow
from sd_coordinator.store import FINISHED, Finish, Ingest, Store

log = logging.getLogger("sd.coordinator.ingest")

DURATIONS_KEPT = 200


@dataclass(frozen=True)
class ImageResult:
    """One result image as a worker sent it: its bytes, or its file spooled from a stream
    (`Blobs.spool_results`, only ever for data that starts as a PNG)."""

    task_id: str
    worker: str
    png: ResultData
    duration_s: float = 0

    @property
    def is_png(self) -> bool:
        """Whether it starts with the PNG signature (Pillow checks the rest when it is read)."""
        return isinstance(self.png, Path) or bytes(self.png[: len(PNG_SIGNATURE)]) == PNG_SIGNATURE


class Ingestor:
    """Stores each task's outcome exactly once (idempotent by task_id) and counts throughput."""

    def __init__(
        self, store: Store, blobs: Blobs, rates: RateWindow, metrics: Metrics | None = None
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.rates = rates
        self.metrics = metrics or Metrics()
        # Recent tasks' durations: how long a task usually takes (sd_coordinator.rescue).
        self.durations: deque[float] = deque(maxlen=DURATIONS_KEPT)
        # Held while result files are moved into place and their rows written, so that of
        # two results of one task arriving at once the second finds the first stored.
        self._storing = asyncio.Lock()

    def _answer(
        self, task_id: str, result: Ingest, *, failed: bool = False, duration_s: float = 0
    ) -> IngestAnswer:
        if result is Ingest.UNKNOWN:
            raise NotFound(f"unknown task {task_id}")
        if result is Ingest.STORED:
            self.rates.record()
            self.metrics.finished(failed=failed, duration_s=duration_s)
            if duration_s > 0:
                self.durations.append(duration_s)
        return IngestAnswer(task_id=task_id, stored=True, duplicate=result is Ingest.DUPLICATE)

    async def image_result(
        self, task_id: str, worker: str, png: ResultData, duration_s: float = 0
    ) -> IngestAnswer:
        """Store a result image, then mark its task done."""
        (answer,) = await self.image_results([ImageResult(task_id, worker, png, duration_s)])
        if isinstance(answer, ServiceError):
            raise answer
        return answer

    async def image_results(self, results: list[ImageResult]) -> list[IngestAnswer | ServiceError]:
        """Store a batch of result images: one state read, one thread hop for the files, one
        transaction for the rows. One answer (or error) per result, in order."""
        async with self._storing:
            return await self._image_results(results)

    async def _image_results(self, results: list[ImageResult]) -> list[IngestAnswer | ServiceError]:
        states = await self.store.task_states([r.task_id for r in results])
        answers: list[IngestAnswer | ServiceError | None] = [None] * len(results)
        fresh: dict[str, int] = {}
        for i, r in enumerate(results):
            state = states.get(r.task_id)
            if not r.is_png:
                answers[i] = Invalid("a result image must be a PNG")
            elif state is None:
                answers[i] = NotFound(f"unknown task {r.task_id}")
            elif state in FINISHED or r.task_id in fresh:
                answers[i] = IngestAnswer(task_id=r.task_id, stored=True, duplicate=True)
            else:
                fresh[r.task_id] = i
        if fresh:
            # The files land before the rows that name them, so a crash in between leaves no
            # dangling reference; a redelivered task rewrites the same name atomically.
            names = await self.blobs.put_results(
                [(task_id, results[i].png) for task_id, i in fresh.items()]
            )
            stored = await self.store.finish_many(
                [
                    Finish(task_id, results[i].worker, failed=False, result=name)
                    for (task_id, i), name in zip(fresh.items(), names, strict=True)
                ]
            )
            for (task_id, i), result in zip(fresh.items(), stored, strict=True):
                try:
                    answers[i] = self._answer(task_id, result, duration_s=results[i].duration_s)
                except ServiceError as exc:
                    answers[i] = exc
        assert all(a is not None for a in answers)
        return answers  # type: ignore[return-value]

    async def outcome(self, outcome: TaskOutcome) -> IngestAnswer:
        """Store a custom task's output, a failure, or note a transient failed attempt."""
        (answer,) = await self.outcomes([outcome])
        if isinstance(answer, ServiceError):
            raise answer
        return answer

    async def outcomes(self, outcomes: list[TaskOutcome]) -> list[IngestAnswer | ServiceError]:
        """Store a batch of JSON outcomes in one transaction; one answer (or error) each."""
        written = [i for i, o in enumerate(outcomes) if o.result is not None]
        if not written:
            return await self._outcomes(outcomes, set())
        async with self._storing:
            # A result a worker wrote itself (shared storage) becomes the task's only if the
            # task is unfinished: a late or duplicate one is removed, never renamed over it.
            states = await self.store.task_states([outcomes[i].task_id for i in written])
            fresh: dict[str, int] = {}
            late: list[str] = []
            for i in written:
                o = outcomes[i]
                assert o.result is not None
                if states.get(o.task_id) in (None, *FINISHED) or o.task_id in fresh:
                    late.append(o.result)
                else:
                    fresh[o.task_id] = i
            accepted = await self.blobs.accept_incoming(
                [(str(outcomes[i].result), task_id) for task_id, i in fresh.items()]
            )
            await self.blobs.discard_incoming(late)
            missing = {t for t, ok in zip(fresh, accepted, strict=True) if not ok}
            return await self._outcomes(outcomes, missing)

    async def _outcomes(
        self, outcomes: list[TaskOutcome], missing: set[str]
    ) -> list[IngestAnswer | ServiceError]:
        answers: list[IngestAnswer | ServiceError | None] = [None] * len(outcomes)
        final: dict[int, Finish] = {}
        retries: list[TaskOutcome] = []
        for i, outcome in enumerate(outcomes):
            if outcome.task_id in missing:
                answers[i] = Invalid(
                    f"result {outcome.result} is not in the coordinator's results folder (or is "
                    "not a PNG): this worker does not share its DATA_DIR; send the image instead"
                )
            elif outcome.retry:
                retries.append(outcome)
                answers[i] = IngestAnswer(task_id=outcome.task_id, stored=True)
            else:
                name = None if outcome.result is None else Blobs.result_name(outcome.task_id)
                final[i] = Finish(
                    outcome.task_id,
                    outcome.worker,
                    outcome.error is not None,
                    output=outcome.output,
                    error=outcome.error,
                    result=name,
                )
        # Transient failed attempts (rare: a pool process died) are noted together.
        await asyncio.gather(
            *(self.store.note_attempt(o.task_id, o.worker, o.error or "") for o in retries)
        )
        stored = await self.store.finish_many(list(final.values())) if final else []
        for i, result in zip(final, stored, strict=True):
            outcome = outcomes[i]
            try:
                answers[i] = self._answer(
                    outcome.task_id,
                    result,
                    failed=outcome.error is not None,
                    duration_s=outcome.duration_s,
                )
            except ServiceError as exc:
                answers[i] = exc
        assert all(a is not None for a in answers)
        return answers  # type: ignore[return-value]

    async def dead_letter(self, task_id: str, reason: str) -> None:
        """The broker gave up on a task: it ends failed, keeping the last attempt's error."""
        result = await self.store.finish(Finish(task_id, None, failed=True, error=reason))
        if result is Ingest.STORED:
            self.rates.record()
            self.metrics.finished(failed=True, duration_s=None)
            log.warning("task %s failed: %s", task_id, reason)
