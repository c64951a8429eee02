"""Jobs and tasks in SQLite (DATA_DIR/sd.sqlite3); writes go through `BatchedSqlite`."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import orjson

from sd_coordinator.sqlite_batch import BatchedSqlite

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    ops TEXT NOT NULL,
    total INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    started INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(job_id),
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    state TEXT NOT NULL,
    input TEXT,
    filename TEXT,
    params TEXT NOT NULL DEFAULT '{}',
    worker TEXT,
    result TEXT,
    output TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    published INTEGER NOT NULL DEFAULT 0,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS tasks_by_job ON tasks(job_id, seq);
CREATE INDEX IF NOT EXISTS tasks_unfinished ON tasks(state) WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs(created_at);
"""

FINISHED = ("done", "failed")


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


# SQLite allows a limited number of parameters per statement: long id lists go in chunks.
IN_CHUNK = 500


def _in_chunks(ids: Sequence[str]) -> Iterator[tuple[str, Sequence[str]]]:
    """(placeholders, ids) for `... IN (placeholders)`, a chunk of at most IN_CHUNK at a time."""
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        yield ",".join("?" * len(chunk)), chunk


def job_state(total: int, done: int, failed: int, started: int) -> str:
    """queued → running → done (all succeeded) or failed (all finished, one or more failed)."""
    if done + failed >= total:
        return "failed" if failed else "done"
    return "running" if started or done or failed else "queued"


def _job_summary(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "job_id": row["job_id"],
        "state": job_state(row["total"], row["done"], row["failed"], row["started"]),
        "total": row["total"],
        "done": row["done"],
        "failed": row["failed"],
        "created_at": row["created_at"],
        "finished_at": row["finished_at"],
        "ops": row["ops"],
        "kind": row["kind"],
        "name": row["name"],
    }


def _task_view(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "task_id": row["task_id"],
        "state": row["state"],
        "type": row["type"],
        "worker": row["worker"],
        "result": row["result"],
        "output": orjson.loads(row["output"]) if row["output"] is not None else None,
        "error": row["error"],
        "input": row["input"],
        "filename": row["filename"],
        "attempts": row["attempts"],
    }


class Store:
    """SQLite-backed jobs and tasks. `start()` before use; `stop()` is idempotent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sql = BatchedSqlite(path, SCHEMA, name="sd-store")

    async def start(self) -> None:
        """Open the database, create the schema, start the batching writer."""
        await self._sql.start()

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

    # -- writes -----------------------------------------------------------------------------

    async def create_job(
        self, job_id: str, kind: str, name: str, ops: str, tasks: Sequence[NewTask]
    ) -> None:
        """Insert a job and its tasks, all queued and not yet published."""
        now = time.time()

        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO jobs (job_id, kind, name, ops, total, created_at)"
                " VALUES (?,?,?,?,?,?)",
                (job_id, kind, name, ops, len(tasks), now),
            )
            db.executemany(
                "INSERT INTO tasks (task_id, job_id, seq, type, state, input, filename, params)"
                " VALUES (?,?,?,?,'queued',?,?,?)",
                [
                    (
                        t.task_id,
                        job_id,
                        i,
                        t.type,
                        t.input,
                        t.filename,
                        orjson.dumps(t.params or {}),
                    )
                    for i, t in enumerate(tasks)
                ],
            )

        await self._write(op)

    async def delete_job(self, job_id: str) -> None:
        """Remove a job whose tasks could not be published (nothing was enqueued)."""

        def op(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM tasks WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

        await self._write(op)

    async def mark_published(self, task_ids: Iterable[str]) -> None:
        """Record that the broker confirmed these tasks."""
        rows = [(t,) for t in task_ids]

        def op(db: sqlite3.Connection) -> None:
            db.executemany("UPDATE tasks SET published = 1 WHERE task_id = ?", rows)

        await self._write(op)

    async def mark_running(self, task_ids: Sequence[str], worker: str) -> None:
        """A worker started these tasks (best effort: the final outcome is what counts)."""

        def op(db: sqlite3.Connection) -> None:
            changed = db.executemany(
                "UPDATE tasks SET state = 'running', worker = ?"
                " WHERE task_id = ? AND state = 'queued'",
                [(worker, t) for t in task_ids],
            ).rowcount
            if changed:
                for marks, chunk in _in_chunks(task_ids):
                    db.execute(
                        "UPDATE jobs SET started = 1 WHERE started = 0 AND job_id IN"
                        f" (SELECT job_id FROM tasks WHERE task_id IN ({marks}))",
                        chunk,
                    )

        await self._write(op)

    async def note_attempt(self, task_id: str, worker: str, error: str) -> None:
        """An attempt failed transiently; the message goes back to the queue."""

        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE tasks SET attempts = attempts + 1, error = ?, worker = ?, state = 'queued'"
                " WHERE task_id = ? AND state IN ('queued', 'running')",
                (error, worker, task_id),
            )

        await self._write(op)

    async def finish(self, outcome: Finish) -> Ingest:
        """Store a task's outcome exactly once; later reports of the same task are duplicates."""
        (result,) = await self.finish_many([outcome])
        return result

    async def finish_many(self, outcomes: Sequence[Finish]) -> list[Ingest]:
        """`finish` for a batch, in one transaction: one read of the tasks' rows, one
        statement per changed task and one per job. One answer per outcome, in order; a task
        reported twice in the batch is stored once."""
        now = time.time()

        def op(db: sqlite3.Connection) -> list[Ingest]:
            ids = list(dict.fromkeys(o.task_id for o in outcomes))
            rows: dict[str, sqlite3.Row] = {}
            for marks, chunk in _in_chunks(ids):
                for row in db.execute(
                    f"SELECT task_id, job_id, state, error FROM tasks WHERE task_id IN ({marks})",
                    chunk,
                ):
                    rows[row["task_id"]] = row
            answers: list[Ingest] = []
            updates: list[tuple[Any, ...]] = []
            counts: dict[str, list[int]] = {}  # job_id → [done, failed]
            stored: set[str] = set()
            for outcome in outcomes:
                row = rows.get(outcome.task_id)
                if row is None:
                    answers.append(Ingest.UNKNOWN)
                    continue
                if row["state"] in FINISHED or outcome.task_id in stored:
                    answers.append(Ingest.DUPLICATE)
                    continue
                stored.add(outcome.task_id)
                error = outcome.error or "failed"
                if row["error"] and row["error"] != error:
                    error = f"{error} (last attempt: {row['error']})"
                updates.append((
                    "failed" if outcome.failed else "done",
                    outcome.worker,
                    outcome.result,
                    None if outcome.output is None else orjson.dumps(outcome.output),
                    error if outcome.failed else None,
                    now,
                    outcome.task_id,
                ))  # fmt: skip
                counts.setdefault(row["job_id"], [0, 0])[1 if outcome.failed else 0] += 1
                answers.append(Ingest.STORED)
            db.executemany(
                "UPDATE tasks SET state = ?, worker = COALESCE(?, worker), result = ?, output = ?,"
                " error = ?, finished_at = ? WHERE task_id = ?",
                updates,
            )
            db.executemany(
                "UPDATE jobs SET done = done + ?, failed = failed + ?, started = 1,"
                " finished_at = CASE WHEN done + failed + ? >= total THEN ? END WHERE job_id = ?",
                [(d, f, d + f, now, job_id) for job_id, (d, f) in counts.items()],
            )
            return answers

        return await self._write(op)

    # -- reads ------------------------------------------------------------------------------

    async def task_state(self, task_id: str) -> str | None:
        """The task's state, or None if unknown."""

        def read() -> str | None:
            row = self.db.execute(
                "SELECT state FROM tasks WHERE task_id = ?", (task_id,)
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._call(read)

    async def task_states(self, task_ids: Sequence[str]) -> dict[str, str]:
        """The state of each known task among `task_ids` (one read for a batch of results)."""

        def read() -> dict[str, str]:
            states: dict[str, str] = {}
            for marks, chunk in _in_chunks(task_ids):
                for task_id, state in self.db.execute(
                    f"SELECT task_id, state FROM tasks WHERE task_id IN ({marks})", chunk
                ):
                    states[task_id] = state
            return states

        return await self._call(read)

    async def count_by_state(self) -> dict[str, int]:
        """How many tasks are queued, running, done and failed (cheap: job counters and the
        index of unfinished tasks, never a scan of finished ones)."""

        def read() -> dict[str, int]:
            done, failed = self.db.execute(
                "SELECT COALESCE(SUM(done), 0), COALESCE(SUM(failed), 0) FROM jobs"
            ).fetchone()
            counts = {"queued": 0, "running": 0, "done": done, "failed": failed}
            for state, count in self.db.execute(
                "SELECT state, COUNT(*) FROM tasks WHERE state IN ('queued', 'running')"
                " GROUP BY state"
            ):
                counts[state] = count
            return counts

        return await self._call(read)

    async def list_jobs(self, limit: int = 100) -> list[dict[str, Any]]:
        """Job summaries, newest first."""

        def read() -> list[dict[str, Any]]:
            rows = self.db.execute(
                "SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
            ).fetchall()
            return [_job_summary(r) for r in rows]

        return await self._call(read)

    async def get_job(self, job_id: str) -> dict[str, Any] | None:
        """A job with its tasks, or None."""

        def read() -> dict[str, Any] | None:
            row = self.db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            job = _job_summary(row)
            tasks = self.db.execute(
                "SELECT * FROM tasks WHERE job_id = ? ORDER BY seq", (job_id,)
            ).fetchall()
            job["tasks"] = [_task_view(t) for t in tasks]
            return job

        return await self._call(read)

    async def totals(self) -> dict[str, int]:
        """Task counts over all jobs: done, failed and not yet finished."""

        def read() -> dict[str, int]:
            row = self.db.execute(
                "SELECT COALESCE(SUM(total), 0), COALESCE(SUM(done), 0), COALESCE(SUM(failed), 0)"
                " FROM jobs"
            ).fetchone()
            total, done, failed = row
            counts = {"queued": 0, "running": 0}
            counts.update(
                self.db.execute(
                    "SELECT state, COUNT(*) FROM tasks WHERE state IN ('queued', 'running')"
                    " GROUP BY state"
                ).fetchall()
            )
            return {
                "total": total,
                "done": done,
                "failed": failed,
                "pending": total - done - failed,
                **counts,
            }

        return await self._call(read)

    async def result_owner(self, filename: str) -> dict[str, Any] | None:
        """The task whose stored result is `filename`, or None."""

        def read() -> dict[str, Any] | None:
            row = self.db.execute(
                "SELECT task_id, job_id, filename FROM tasks WHERE result = ?", (filename,)
            ).fetchone()
            return None if row is None else dict(row)

        return await self._call(read)

    async def is_stored_result(self, filename: str) -> bool:
        """Whether `filename` (`<task_id>.png`) is the recorded result of a finished task."""
        task_id = filename.removesuffix(".png")

        def read() -> bool:
            row = self.db.execute(
                "SELECT 1 FROM tasks WHERE task_id = ? AND result = ? AND state = 'done'",
                (task_id, filename),
            ).fetchone()
            return row is not None

        return await self._call(read)

    async def unfinished_tasks(self, *, unpublished_only: bool) -> list[dict[str, Any]]:
        """Tasks to (re)publish after a restart."""

        def read() -> list[dict[str, Any]]:
            sql = "SELECT t.*, j.ops FROM tasks t JOIN jobs j USING (job_id)"
            sql += " WHERE t.state IN ('queued', 'running')"
            if unpublished_only:
                sql += " AND t.published = 0"
            return [dict(r) for r in self.db.execute(sql + " ORDER BY j.created_at, t.seq")]

        return await self._call(read)
