"""The store's writes: jobs created and deleted, tasks published, started, retried and finished,
with the values they take (`NewTask`, `Finish`) and answer (`Ingest`).

Each function runs on the database thread inside one batched write transaction (`Store._write`);
`now` is the time the caller asked for the write. Growing jobs' writes are in `job_files`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson

from sd_coordinator.store_rows import FINISHED
from sd_coordinator.store_schema import in_chunks


class Ingest(Enum):
    """What happened to a reported outcome."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class NewTask:
    """A task to insert with its job."""

    task_id: str
    type: str
    input: str | None = None
    filename: str | None = None
    params: dict[str, Any] | None = None


@dataclass(frozen=True)
class Finish:
    """A task's final outcome."""

    task_id: str
    worker: str | None
    failed: bool
    result: str | None = None
    output: Any = None
    error: str | None = None


def create_job(
    db: sqlite3.Connection,
    job_id: str,
    kind: str,
    name: str,
    ops: str,
    tasks: Sequence[NewTask],
    now: float,
) -> None:
    """Insert a job and its tasks, all queued and not yet published."""
    db.execute(
        "INSERT INTO jobs (job_id, kind, name, ops, total, created_at) VALUES (?,?,?,?,?,?)",
        (job_id, kind, name, ops, len(tasks), now),
    )
    db.executemany(
        "INSERT INTO tasks (task_id, job_id, seq, type, state, input, filename, params)"
        " VALUES (?,?,?,?,'queued',?,?,?)",
        [
            (t.task_id, job_id, i, t.type, t.input, t.filename, orjson.dumps(t.params or {}))
            for i, t in enumerate(tasks)
        ],
    )


def delete_job(db: sqlite3.Connection, job_id: str) -> None:
    """Remove a job and its tasks."""
    db.execute("DELETE FROM tasks WHERE job_id = ?", (job_id,))
    db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))


def mark_published(db: sqlite3.Connection, rows: Sequence[tuple[str]]) -> None:
    """Record that the broker confirmed these `(task_id,)`."""
    db.executemany("UPDATE tasks SET published = 1 WHERE task_id = ?", rows)


def mark_running(db: sqlite3.Connection, task_ids: Sequence[str], worker: str) -> None:
    """Queued tasks among `task_ids` become running on `worker`, and their jobs started."""
    changed = db.executemany(
        "UPDATE tasks SET state = 'running', worker = ? WHERE task_id = ? AND state = 'queued'",
        [(worker, t) for t in task_ids],
    ).rowcount
    if changed:
        for marks, chunk in in_chunks(task_ids):
            db.execute(
                "UPDATE jobs SET started = 1 WHERE started = 0 AND job_id IN"
                f" (SELECT job_id FROM tasks WHERE task_id IN ({marks}))",
                chunk,
            )


def note_attempt(db: sqlite3.Connection, task_id: str, worker: str, error: str) -> None:
    """An unfinished task's attempt failed transiently: it is queued again, the error kept."""
    db.execute(
        "UPDATE tasks SET attempts = attempts + 1, error = ?, worker = ?, state = 'queued'"
        " WHERE task_id = ? AND state IN ('queued', 'running')",
        (error, worker, task_id),
    )


def finish_many(db: sqlite3.Connection, outcomes: Sequence[Finish], now: float) -> list[Ingest]:
    """Store each task's outcome once: one read of the tasks' rows, one statement per changed
    task and one per job. One answer per outcome, in order; a task reported twice in the batch
    is stored once, and tasks that mirror a stored one (`dup_of`) get its outcome too."""
    ids = list(dict.fromkeys(o.task_id for o in outcomes))
    rows: dict[str, sqlite3.Row] = {}
    for marks, chunk in in_chunks(ids):
        for row in db.execute(
            f"SELECT task_id, job_id, state, error FROM tasks WHERE task_id IN ({marks})",
            chunk,
        ):
            rows[row["task_id"]] = row
    answers: list[Ingest] = []
    # task_id → (state, worker, result, output, error)
    stored: dict[str, tuple[Any, ...]] = {}
    jobs: dict[str, str] = {}
    for outcome in outcomes:
        row = rows.get(outcome.task_id)
        if row is None:
            answers.append(Ingest.UNKNOWN)
            continue
        if row["state"] in FINISHED or outcome.task_id in stored:
            answers.append(Ingest.DUPLICATE)
            continue
        error = outcome.error or "failed"
        if row["error"] and row["error"] != error:
            error = f"{error} (last attempt: {row['error']})"
        stored[outcome.task_id] = (
            "failed" if outcome.failed else "done",
            outcome.worker,
            outcome.result,
            None if outcome.output is None else orjson.dumps(outcome.output),
            error if outcome.failed else None,
        )
        jobs[outcome.task_id] = row["job_id"]
        answers.append(Ingest.STORED)
    # Names sent with the same content as a stored task get its outcome too.
    for marks, chunk in in_chunks(list(stored)):
        for dup in db.execute(
            f"SELECT task_id, job_id, dup_of FROM tasks WHERE dup_of IN ({marks})"
            " AND state IN ('queued', 'running')",
            chunk,
        ).fetchall():
            stored[dup["task_id"]] = stored[dup["dup_of"]]
            jobs[dup["task_id"]] = dup["job_id"]
    counts: dict[str, list[int]] = {}  # job_id → [done, failed, finished so far]
    for marks, chunk in in_chunks(list(dict.fromkeys(jobs.values()))):
        for job in db.execute(
            f"SELECT job_id, done + failed FROM jobs WHERE job_id IN ({marks})", chunk
        ):
            counts[job[0]] = [0, 0, job[1]]
    updates: list[tuple[Any, ...]] = []
    for task_id, (state, *values) in stored.items():
        count = counts[jobs[task_id]]
        count[0 if state == "done" else 1] += 1
        count[2] += 1
        updates.append((state, *values, now, count[2], task_id))
    db.executemany(
        "UPDATE tasks SET state = ?, worker = COALESCE(?, worker), result = ?, output = ?,"
        " error = ?, finished_at = ?, fin = ? WHERE task_id = ?",
        updates,
    )
    db.executemany(
        "UPDATE jobs SET done = done + ?, failed = failed + ?, started = 1,"
        " finished_at = CASE WHEN open = 0 AND done + failed + ? >= total THEN ? END"
        " WHERE job_id = ?",
        [(d, f, d + f, now, job_id) for job_id, (d, f, _) in counts.items()],
    )
    return answers


def note_reruns(
    db: sqlite3.Connection, tasks: Sequence[tuple[str, str]], reason: str, now: float
) -> None:
    """Record that these `(task_id, job_id)` were published again, and why."""
    db.executemany(
        "INSERT OR REPLACE INTO reruns (task_id, job_id, reason, at) VALUES (?,?,?,?)",
        [(task_id, job_id, reason, now) for task_id, job_id in tasks],
    )
