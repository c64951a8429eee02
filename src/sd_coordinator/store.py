"""Jobs and tasks in SQLite (DATA_DIR/sd.sqlite3): the `Store` the rest of the coordinator uses.

Its parts: `store_schema` (the tables), `store_reads` and `store_writes` (the SQL, run on the
database thread), `job_files` (growing jobs) and `store_rows` (the typed rows reads return).
Callers import the rows and the values writes take from here. Writes go through
`BatchedSqlite`: many writes, few transactions.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sd_coordinator import job_files, store_reads, store_writes
from sd_coordinator.sqlite_batch import BatchedSqlite
from sd_coordinator.store_rows import (
    FINISHED,
    JobSummary,
    JobView,
    TaskPage,
    TaskView,
    Totals,
    UnfinishedTask,
    job_state,
)
from sd_coordinator.store_schema import SCHEMA, add_columns
from sd_coordinator.store_writes import Finish, Ingest, NewTask

__all__ = [
    "FINISHED",
    "Finish",
    "Ingest",
    "JobSummary",
    "JobView",
    "NewTask",
    "Store",
    "TaskPage",
    "TaskView",
    "Totals",
    "UnfinishedTask",
    "job_state",
]

T = TypeVar("T")

STORE_FILE = "sd.sqlite3"  # in DATA_DIR


class Store:
    """SQLite-backed jobs and tasks. `start()` before use; `stop()` is idempotent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sql = BatchedSqlite(path, SCHEMA, name="sd-store")
        # Set (and replaced) after each write that may finish a task or a job.
        self._finishing = asyncio.Event()

    def next_finish(self) -> asyncio.Event:
        """An event set after the next write that may finish tasks or a job (outcomes stored,
        a job cancelled or closed, files mirroring finished ones): take it before reading, then
        wait on it, and nothing stored in between is missed."""
        return self._finishing

    def wake_waiters(self) -> None:
        """Wake every `next_finish()` waiter now (the server is stopping)."""
        self._finished()

    def _finished(self) -> None:
        self._finishing.set()
        self._finishing = asyncio.Event()

    async def start(self) -> None:
        """Open the database, create the schema, start the batching writer."""
        await self._sql.start()
        await self._call(add_columns, self.db)

    async def stop(self) -> None:
        """Flush pending writes and close."""
        await self._sql.stop()

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for use on the database thread only (inside `_call`/`_write`)."""
        return self._sql.db

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._sql.call(fn, *args)

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        return await self._sql.write(op)

    async def _write_finishing(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """A write that may finish tasks or a job: `next_finish()` waiters wake after it."""
        try:
            return await self._sql.write(op)
        finally:
            self._finished()

    # -- writes (store_writes) --------------------------------------------------------------

    async def create_job(
        self, job_id: str, kind: str, name: str, ops: str, tasks: Sequence[NewTask]
    ) -> None:
        """Insert a job and its tasks, all queued and not yet published."""
        now = time.time()
        await self._write(
            lambda db: store_writes.create_job(db, job_id, kind, name, ops, tasks, now)
        )

    async def delete_job(self, job_id: str) -> None:
        """Remove a job whose tasks could not be published (nothing was enqueued)."""
        await self._write(lambda db: store_writes.delete_job(db, job_id))

    async def mark_published(self, task_ids: Iterable[str]) -> None:
        """Record that the broker confirmed these tasks."""
        rows = [(t,) for t in task_ids]
        await self._write(lambda db: store_writes.mark_published(db, rows))

    async def mark_running(self, task_ids: Sequence[str], worker: str) -> None:
        """A worker started these tasks (best effort: the final outcome is what counts)."""
        await self._write(lambda db: store_writes.mark_running(db, task_ids, worker))

    async def note_attempt(self, task_id: str, worker: str, error: str) -> None:
        """An attempt failed transiently; the message goes back to the queue."""
        await self._write(lambda db: store_writes.note_attempt(db, task_id, worker, error))

    async def finish(self, outcome: Finish) -> Ingest:
        """Store a task's outcome exactly once; later reports of the same task are duplicates."""
        (result,) = await self.finish_many([outcome])
        return result

    async def finish_many(self, outcomes: Sequence[Finish]) -> list[Ingest]:
        """`finish` for a batch, in one transaction. One answer per outcome, in order; a task
        reported twice in the batch is stored once."""
        now = time.time()
        return await self._write_finishing(lambda db: store_writes.finish_many(db, outcomes, now))

    async def note_reruns(self, tasks: Sequence[tuple[str, str]], reason: str) -> None:
        """Record that these (task_id, job_id) were published again, and why (the job view
        marks them)."""
        now = time.time()
        await self._write(lambda db: store_writes.note_reruns(db, tasks, reason, now))

    # -- growing jobs (job_files) -----------------------------------------------------------

    async def create_growing_job(self, job_id: str, name: str, ops: str, copies: int) -> None:
        """Insert an open job that takes files batch by batch."""
        await self._write(lambda db: job_files.create(db, job_id, name, ops, copies, time.time()))

    async def append_files(
        self, job_id: str, files: Sequence[tuple[str, str]]
    ) -> job_files.Appended:
        """Add `(name, sha256)` files to an open job (JobGone, JobShut)."""
        now = time.time()
        return await self._write_finishing(lambda db: job_files.append(db, job_id, files, now))

    async def undo_append(self, job_id: str, added: job_files.Appended) -> None:
        """Take back a batch that could not be published."""
        await self._write(lambda db: job_files.undo(db, job_id, added))

    async def close_job(self, job_id: str) -> None:
        """A growing job takes no more files (JobGone)."""
        await self._write_finishing(lambda db: job_files.close(db, job_id, time.time()))

    async def cancel_job(self, job_id: str) -> None:
        """Unfinished tasks end cancelled (JobGone; JobShut if already finished)."""
        await self._write_finishing(lambda db: job_files.cancel(db, job_id, time.time()))

    async def recently_cancelled(self, limit: int = 1000) -> list[tuple[str, float]]:
        """(job_id, cancelled_at) of the most recently cancelled jobs, newest first."""
        return await self._call(job_files.recently_cancelled, self.db, limit)

    # -- reads (store_reads) ----------------------------------------------------------------

    async def task_state(self, task_id: str) -> str | None:
        """The task's state, or None if unknown."""
        return await self._call(store_reads.task_state, self.db, task_id)

    async def task_states(self, task_ids: Sequence[str]) -> dict[str, str]:
        """The state of each known task among `task_ids` (one read for a batch of results)."""
        return await self._call(store_reads.task_states, self.db, task_ids)

    async def count_by_state(self) -> dict[str, int]:
        """How many tasks are queued, running, done and failed (cheap: job counters and the
        index of unfinished tasks, never a scan of finished ones)."""
        return await self._call(store_reads.count_by_state, self.db)

    async def list_jobs(self, limit: int = 100, before: str | None = None) -> list[JobSummary]:
        """Job summaries, newest first; `before` (a job id) starts after that job."""
        return await self._call(store_reads.list_jobs, self.db, limit, before)

    async def job_summary(self, job_id: str) -> JobSummary | None:
        """A job's summary (counts and state, no tasks), or None: one row, whatever its size."""
        return await self._call(store_reads.job_summary, self.db, job_id)

    async def get_job(self, job_id: str, tasks_limit: int = 1000) -> JobView | None:
        """A job's summary with the first page of its tasks, or None."""
        summary = await self.job_summary(job_id)
        if summary is None:
            return None
        page = await self.tasks_page(job_id, limit=tasks_limit)
        return JobView(summary, page.tasks, page.next)

    async def tasks_page(
        self,
        job_id: str,
        *,
        state: str | None = None,
        limit: int = 1000,
        cursor: int | None = None,
        order: str = "seq",
    ) -> TaskPage:
        """One page of a job's tasks, in task order (`order="seq"`, cursor: the first seq of
        the page) or in the order they finished (`order="finished"`, only finished tasks,
        cursor: the last `finished_seq` seen). `next` is the cursor of the next page, or None
        at the end; in finished order it is always the last one seen, to poll from."""
        return await self._call(
            store_reads.tasks_page, self.db, job_id, state, limit, cursor, order
        )

    async def unfinished_count(self) -> int:
        """Tasks of every job not yet done or failed (queued, running, or still being
        published): what the workers share."""
        return await self._call(store_reads.unfinished_count, self.db)

    async def totals(self) -> Totals:
        """Task counts over all jobs: done, failed and not yet finished."""
        return await self._call(store_reads.totals, self.db)

    async def is_stored_result(self, filename: str) -> bool:
        """Whether `filename` (`<task_id>.png`) is the recorded result of a finished task."""
        return await self._call(store_reads.is_stored_result, self.db, filename)

    async def unfinished_tasks(self, *, unpublished_only: bool) -> list[UnfinishedTask]:
        """Tasks to (re)publish after a restart."""
        return await self._call(store_reads.unfinished_tasks, self.db, unpublished_only)

    # -- backup runs (sd_coordinator.rescue) ------------------------------------------------

    async def tasks_to_rerun(self, task_ids: Sequence[str]) -> list[UnfinishedTask]:
        """The unfinished tasks among `task_ids`, with their job's ops, to publish again."""
        return await self._call(store_reads.tasks_to_rerun, self.db, task_ids)

    async def unfinished_published(self, limit: int) -> list[tuple[str, str | None]]:
        """(task_id, worker) of up to `limit` published tasks not yet finished."""
        return await self._call(store_reads.unfinished_published, self.db, limit)
