"""The typed rows the store's reads return.

Rows are frozen: a read hands out a snapshot of the database. `as_json()` gives the JSON object
the HTTP API sends for a row, so the API's shapes are written down here, next to the columns.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

FINISHED = ("done", "failed", "cancelled")


def job_state(
    total: int,
    done: int,
    failed: int,
    started: int,
    *,
    open: bool = False,
    cancelled: bool = False,
) -> str:
    """queued → running → done (all succeeded) or failed (all finished, one or more failed);
    a growing job is finished only once closed; a cancelled job is `cancelled`."""
    if cancelled:
        return "cancelled"
    if not open and done + failed >= total:
        return "failed" if failed else "done"
    return "running" if started or done or failed else "queued"


@dataclass(frozen=True, slots=True)
class JobSummary:
    """A job's counts and state, without its tasks."""

    job_id: str
    state: str
    total: int
    done: int
    failed: int
    cancelled: int
    open: bool  # a growing job that still takes files
    copies: int
    created_at: float
    finished_at: float | None
    ops: str
    kind: str  # "image", "task", or "files" (a growing job)
    name: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobSummary:
        """The summary of a `jobs` row."""
        return cls(
            row["job_id"],
            job_state(
                row["total"],
                row["done"],
                row["failed"],
                row["started"],
                open=bool(row["open"]),
                cancelled=row["cancelled_at"] is not None,
            ),
            row["total"],
            row["done"],
            row["failed"],
            row["cancelled"],
            bool(row["open"]),
            row["copies"],
            row["created_at"],
            row["finished_at"],
            row["ops"],
            row["kind"],
            row["name"],
        )

    def as_json(self) -> dict[str, Any]:
        """The job summary the API sends."""
        return {
            "job_id": self.job_id,
            "state": self.state,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "open": self.open,
            "copies": self.copies,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "ops": self.ops,
            "kind": self.kind,
            "name": self.name,
        }


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task as a job's pages show it."""

    task_id: str
    state: str
    type: str
    worker: str | None
    result: str | None  # the stored result's file name (image tasks)
    output: Any  # a custom task's JSON output
    error: str | None
    input: str | None  # the input's sha256
    filename: str | None
    attempts: int
    seq: int  # the task's place in its job
    copy: int
    dup_of: str | None  # the task of the job with the same content, whose outcome it mirrors
    finished_seq: int | None  # its place in its job's order of finishing
    rerun: str | None  # why it was published again, if it was

    @classmethod
    def from_row(cls, row: sqlite3.Row, rerun: str | None) -> TaskView:
        """The view of a `tasks` row, and the reason it was published again, if any."""
        return cls(
            row["task_id"],
            row["state"],
            row["type"],
            row["worker"],
            row["result"],
            orjson.loads(row["output"]) if row["output"] is not None else None,
            row["error"],
            row["input"],
            row["filename"],
            row["attempts"],
            row["seq"],
            row["copy"],
            row["dup_of"],
            row["fin"],
            rerun,
        )

    def as_json(self) -> dict[str, Any]:
        """The task the API sends."""
        return {
            "task_id": self.task_id,
            "state": self.state,
            "type": self.type,
            "worker": self.worker,
            "result": self.result,
            "output": self.output,
            "error": self.error,
            "input": self.input,
            "filename": self.filename,
            "attempts": self.attempts,
            "seq": self.seq,
            "copy": self.copy,
            "dup_of": self.dup_of,
            "finished_seq": self.finished_seq,
            "rerun": self.rerun,
        }


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of a job's tasks; `next` is the cursor of the next page (see
    `Store.tasks_page`)."""

    tasks: list[TaskView]
    next: int | None

    def as_json(self) -> dict[str, Any]:
        """The page GET /jobs/{job_id}/tasks sends."""
        return {"tasks": [t.as_json() for t in self.tasks], "next": self.next}


@dataclass(frozen=True, slots=True)
class JobView:
    """A job's summary with the first page of its tasks."""

    summary: JobSummary
    tasks: list[TaskView]
    tasks_next: int | None  # the cursor of the next page, or None

    def as_json(self) -> dict[str, Any]:
        """The job GET /jobs/{job_id} sends: the summary's fields, `tasks` and `tasks_next`."""
        return {
            **self.summary.as_json(),
            "tasks": [t.as_json() for t in self.tasks],
            "tasks_next": self.tasks_next,
        }


@dataclass(frozen=True, slots=True)
class Totals:
    """Task counts over all jobs."""

    total: int
    done: int
    failed: int
    cancelled: int
    pending: int  # not yet finished: total - done - failed - cancelled
    queued: int
    running: int

    def as_json(self) -> dict[str, Any]:
        """The totals the dashboard's snapshot sends."""
        return {
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "pending": self.pending,
            "queued": self.queued,
            "running": self.running,
        }


@dataclass(frozen=True, slots=True)
class UnfinishedTask:
    """A queued or running task with what it takes to publish its message again."""

    task_id: str
    job_id: str
    type: str
    input: str | None  # the input's sha256
    params: dict[str, Any]
    ops: str  # its job's pipeline

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> UnfinishedTask:
        """From a `tasks` row joined with its job's `ops`."""
        return cls(
            row["task_id"],
            row["job_id"],
            row["type"],
            row["input"],
            orjson.loads(row["params"]),
            row["ops"],
        )
