"""Turning uploads and custom tasks into stored jobs and published task messages."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sd_common.images import ImageInfo, ImageRejected, inspect_image
from sd_common.messages import InputRef, TaskMessage
from sd_common.pipeline import PipelineError, check_sizes, format_pipeline, parse_pipeline
from sd_common.settings import Settings
from sd_common.tasks import IMAGE_TASK, get_task_type
from sd_coordinator.blobs import Blobs
from sd_coordinator.broker import Broker
from sd_coordinator.errors import Invalid, ServiceError, Unavailable
from sd_coordinator.metrics import Metrics
from sd_coordinator.store import NewTask, Store, UnfinishedTask

log = logging.getLogger("sd.coordinator.submit")

MAX_TASKS_PER_JOB = 10_000
MAX_FILES_PER_UPLOAD = 100


@dataclass(frozen=True)
class Upload:
    """One uploaded file, read and size-checked by the API layer."""

    filename: str
    data: bytes


def _new_ids(count: int) -> list[str]:
    """`count` task ids as 32 hex digits: 64 random bits drawn once for the job, then the
    task's number in it. A job's ids are unique, sort in order and sit side by side in the
    tasks table's primary-key index, so inserting and updating a job's rows dirties a few
    index pages, not one per task (random ids: 8.8 µs of SQLite per task to insert and mark
    published in a database of 60 000 tasks, 4.1 µs these; /tmp measurement). Task ids are
    no secrets: `GET /jobs/{job_id}` lists them."""
    prefix = os.urandom(8).hex()
    return [f"{prefix}{seq:016x}" for seq in range(count)]


def _new_id() -> str:
    """A random 128-bit id (a job's) as 32 hex digits."""
    return os.urandom(16).hex()


class Submitter:
    """Validates input, stores it once, records the job, publishes its tasks (`broker.publish`)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        blobs: Blobs,
        broker: Broker,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.broker = broker
        self.metrics = metrics or Metrics()

    async def submit_images(self, uploads: list[Upload], ops: str, copies: int) -> dict[str, Any]:
        """Check every file and the pipeline, then enqueue `copies` tasks per file."""
        if not uploads:
            raise Invalid("no file: send one or more multipart parts named 'file'")
        if len(uploads) > MAX_FILES_PER_UPLOAD:
            raise Invalid(f"too many files: at most {MAX_FILES_PER_UPLOAD} per upload")
        if not 1 <= copies <= 1000:
            raise Invalid("copies must be between 1 and 1000")
        if len(uploads) * copies > MAX_TASKS_PER_JOB:
            raise Invalid(f"too many tasks: files × copies must be at most {MAX_TASKS_PER_JOB}")
        try:
            steps = parse_pipeline(ops)
        except PipelineError as exc:
            raise Invalid(f"ops: {exc}") from exc
        canonical_ops = format_pipeline(steps)
        for upload in uploads:
            info = await self._check_image(upload)
            try:
                # Every step's output is known before any runs: a tiny image that a rotate
                # would blow up to gigabytes is refused here, not in a pool process.
                check_sizes(steps, info.upright_size, self.settings.max_image_pixels)
            except PipelineError as exc:
                raise Invalid(f"{upload.filename or 'file'}: ops: {exc}") from exc
        hashes = await self.blobs.put_inputs([u.data for u in uploads])
        job_id = _new_id()
        task_ids = iter(_new_ids(len(uploads) * copies))
        tasks: list[NewTask] = []
        messages: list[TaskMessage] = []
        for upload, sha256 in zip(uploads, hashes, strict=True):
            ref = InputRef(sha256=sha256, size=len(upload.data))
            for task_id in itertools.islice(task_ids, copies):
                tasks.append(NewTask(task_id, IMAGE_TASK, sha256, upload.filename))
                messages.append(
                    TaskMessage(
                        task_id=task_id,
                        job_id=job_id,
                        type=IMAGE_TASK,
                        ops=canonical_ops,
                        input=ref,
                    )
                )
        name = uploads[0].filename + (f" +{len(uploads) - 1}" if len(uploads) > 1 else "")
        return await self._enqueue(job_id, "image", name, canonical_ops, tasks, messages)

    async def _check_image(self, upload: Upload) -> ImageInfo:
        try:
            return await asyncio.to_thread(
                inspect_image, upload.data, self.settings.max_image_pixels
            )
        except ImageRejected as exc:
            name = upload.filename or "file"
            raise ServiceError(f"{name}: {exc}", status_code=exc.status_code) from exc

    async def submit_task(self, type_name: str, payload: Any, copies: int) -> dict[str, Any]:
        """Validate a custom task's payload with its registered model, then enqueue it."""
        task_type = get_task_type(type_name)
        if task_type is None or type_name == IMAGE_TASK:
            raise Invalid(f"unknown task type {type_name!r}; use POST /upload for images")
        if not 1 <= copies <= 1000:
            raise Invalid("copies must be between 1 and 1000")
        try:
            params = task_type.payload.model_validate(payload).model_dump(mode="json")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}"
                for e in exc.errors()
            )
            raise Invalid(f"bad payload for {type_name!r}: {problems}") from exc
        job_id = _new_id()
        tasks, messages = [], []
        for task_id in _new_ids(copies):
            tasks.append(NewTask(task_id, type_name, params=params))
            messages.append(
                TaskMessage(task_id=task_id, job_id=job_id, type=type_name, params=params)
            )
        return await self._enqueue(job_id, "task", type_name, "", tasks, messages)

    async def _enqueue(
        self,
        job_id: str,
        kind: str,
        name: str,
        ops: str,
        tasks: list[NewTask],
        messages: list[TaskMessage],
    ) -> dict[str, Any]:
        await self.store.create_job(job_id, kind, name, ops, tasks)
        try:
            await self.broker.publish(messages)
        except Exception as exc:
            await self.store.delete_job(job_id)
            log.error("could not publish job %s to the queue: %s", job_id, exc)
            raise Unavailable(
                "the task queue is unavailable right now (RabbitMQ unreachable?); nothing was "
                "queued, try again"
            ) from exc
        await self.store.mark_published(t.task_id for t in tasks)
        self.metrics.submitted(len(tasks))
        return {"status": "sent", "job_id": job_id, "tasks": len(tasks)}

    async def republish_unfinished(self, *, unpublished_only: bool) -> int:
        """After a restart: publish tasks the queue may not hold (outbox recovery)."""
        rows = await self.store.unfinished_tasks(unpublished_only=unpublished_only)
        messages = [message_again(row, self.blobs) for row in rows]
        if messages:
            await self.broker.publish(messages)
            await self.store.mark_published(m.task_id for m in messages)
        return len(messages)


def message_again(row: UnfinishedTask, blobs: Blobs) -> TaskMessage:
    """The message of a stored, unfinished task, to publish once more (recovery, backup runs)."""
    ref = None
    if row.input:
        path = blobs.input_path(row.input)
        ref = InputRef(sha256=row.input, size=path.stat().st_size if path else 0)
    return TaskMessage(
        task_id=row.task_id,
        job_id=row.job_id,
        type=row.type,
        ops=row.ops if row.type == IMAGE_TASK else "",
        input=ref,
        params=row.params,
    )
