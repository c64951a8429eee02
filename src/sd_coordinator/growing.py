"""Jobs that grow: created with a pipeline, fed files in batches, closed; and cancelling any job.

Each batch is checked file by file: the valid files are stored and their tasks published before
the answer, so workers start on the first photos while the rest upload; the bad ones are listed
with their reasons and change nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from sd_common.images import ImageRejected, inspect_image
from sd_common.messages import InputRef, TaskMessage
from sd_common.pipeline import PipelineError, format_pipeline, parse_pipeline
from sd_common.settings import Settings
from sd_common.tasks import IMAGE_TASK
from sd_coordinator import transport
from sd_coordinator.blobs import Blobs
from sd_coordinator.broker import Broker
from sd_coordinator.errors import Conflict, Invalid, NotFound, Unavailable
from sd_coordinator.job_files import JobGone, JobShut
from sd_coordinator.metrics import Metrics
from sd_coordinator.store import JobSummary, Store
from sd_coordinator.submit import MAX_FILES_PER_UPLOAD, Upload, _new_id

log = logging.getLogger("sd.coordinator.growing")

MAX_COPIES = 1000
CANCELLED_KEPT = 1000
REPORTED_FOR_S = 3600.0
REPORTED_MOST = 100


class CancelledJobs:
    """The most recently cancelled jobs, which workers skip without processing their tasks."""

    def __init__(self, kept: int = CANCELLED_KEPT) -> None:
        self.kept = kept
        self._ids: OrderedDict[str, float] = OrderedDict()

    def add(self, job_id: str, at: float | None = None) -> None:
        """Remember a cancelled job (the oldest is forgotten past `kept`)."""
        self._ids[job_id] = time.time() if at is None else at
        self._ids.move_to_end(job_id)
        while len(self._ids) > self.kept:
            self._ids.popitem(last=False)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids

    def recent(self, max_age_s: float = REPORTED_FOR_S, most: int = REPORTED_MOST) -> list[str]:
        """The newest ids cancelled within `max_age_s`, at most `most` (what a worker's report
        is answered: a worker that is not told just runs a task whose result is discarded)."""
        since = time.time() - max_age_s
        recent: list[str] = []
        for job_id, at in reversed(self._ids.items()):
            if at < since or len(recent) >= most:
                break
            recent.append(job_id)
        return recent


class GrowingJobs:
    """Create, feed, close and cancel jobs."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        blobs: Blobs,
        broker: Broker,
        cancelled: CancelledJobs,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.broker = broker
        self.cancelled = cancelled
        self.metrics = metrics or Metrics()

    async def start(self) -> None:
        """Remember the jobs cancelled before a restart (their messages may still be queued)."""
        for job_id, at in reversed(await self.store.recently_cancelled(self.cancelled.kept)):
            self.cancelled.add(job_id, at)

    async def create(self, ops: str, copies: int, name: str) -> dict[str, Any]:
        """An open job with its pipeline and no files yet."""
        try:
            canonical = format_pipeline(parse_pipeline(ops))
        except PipelineError as exc:
            raise Invalid(f"ops: {exc}") from exc
        if not 1 <= copies <= MAX_COPIES:
            raise Invalid(f"copies must be between 1 and {MAX_COPIES}")
        job_id = _new_id()
        await self.store.create_growing_job(job_id, name, canonical, copies)
        return await self.summary(job_id)

    async def summary(self, job_id: str) -> dict[str, Any]:
        """The job's summary, with what a client needs to size its batches."""
        job = await self.store.job_summary(job_id)
        if job is None:
            raise NotFound(f"unknown job {job_id}")
        return {
            **job.as_json(),
            "max_upload_bytes": self.settings.max_upload_bytes,
            "max_files": MAX_FILES_PER_UPLOAD,
        }

    async def add_files(self, job_id: str, uploads: Sequence[Upload]) -> dict[str, Any]:
        """Store and queue the valid files of a batch; list the others with their reasons."""
        if not uploads:
            raise Invalid("no file: send one or more multipart parts named 'file'")
        if len(uploads) > MAX_FILES_PER_UPLOAD:
            raise Invalid(f"too many files: at most {MAX_FILES_PER_UPLOAD} per batch")
        job = await self.store.job_summary(job_id)
        if job is None:
            raise NotFound(f"unknown job {job_id}")
        self._check_open(job)
        checked = await asyncio.to_thread(lambda: [self._check_and_store(u) for u in uploads])
        rejected = [
            {"name": u.filename, "status": "rejected", "tasks": 0, "detail": str(outcome)}
            for u, outcome in zip(uploads, checked, strict=True)
            if isinstance(outcome, ImageRejected)
        ]
        stored = [
            (u, outcome)
            for u, outcome in zip(uploads, checked, strict=True)
            if isinstance(outcome, str)
        ]
        sizes = {sha: len(u.data) for u, sha in stored}
        try:
            added = await self.store.append_files(job_id, [(u.filename, sha) for u, sha in stored])
        except JobGone as exc:
            raise NotFound(f"unknown job {job_id}") from exc
        except JobShut as exc:
            raise Conflict(str(exc)) from exc
        messages = [
            TaskMessage(
                task_id=task_id,
                job_id=job_id,
                type=IMAGE_TASK,
                ops=job.ops,
                input=InputRef(sha256=sha, size=sizes[sha]),
            )
            for task_id, sha, _ in added.publish
        ]
        if messages:
            try:
                per_message = transport.tasks_per_message(
                    len(messages), transport.BATCH_MESSAGES_MIN
                )
                await self.broker.publish(messages, per_message=per_message)
            except Exception as exc:
                await self.store.undo_append(job_id, added)
                log.error("could not publish a batch of job %s: %s", job_id, exc)
                raise Unavailable(
                    "the task queue is unavailable right now (RabbitMQ unreachable?); this "
                    "batch was not queued, send it again"
                ) from exc
            await self.store.mark_published(m.task_id for m in messages)
            self.metrics.submitted(len(messages))
        return {
            "job_id": job_id,
            "tasks": len(added.task_ids),
            "files": added.answers + rejected,
            "rejected": len(rejected) + sum(a["status"] == "rejected" for a in added.answers),
        }

    @staticmethod
    def _check_open(job: JobSummary) -> None:
        if job.state == "cancelled":
            raise Conflict(f"job {job.job_id} was cancelled; it takes no more files")
        if not job.open:
            raise Conflict(f"job {job.job_id} is closed; it takes no more files (create a new job)")

    def _check_and_store(self, upload: Upload) -> str | ImageRejected:
        """The stored input's sha256, or why the file was refused. Blocking: the whole batch
        runs in one thread hop, not two per file.

        The header only (format, dimensions, decompression bombs): the worker decodes and
        checks every input anyway, and a folder of photos decoded here as well would cost
        the machine each photo's decode twice. A file whose pixels turn out truncated ends
        as a failed task with the same reason."""
        try:
            inspect_image(upload.data, self.settings.max_image_pixels, full_decode=False)
        except ImageRejected as exc:
            return exc
        return self.blobs.store_input(upload.data)

    async def close(self, job_id: str) -> dict[str, Any]:
        """The job takes no more files; it is done once its tasks are."""
        try:
            await self.store.close_job(job_id)
        except JobGone as exc:
            raise NotFound(f"unknown job {job_id}") from exc
        return await self.summary(job_id)

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """Queued tasks are not processed, running ones are dropped; what was done is kept."""
        try:
            await self.store.cancel_job(job_id)
        except JobGone as exc:
            raise NotFound(f"unknown job {job_id}") from exc
        except JobShut as exc:
            raise Conflict(str(exc)) from exc
        self.cancelled.add(job_id)
        log.info("job %s cancelled", job_id)
        return await self.summary(job_id)
