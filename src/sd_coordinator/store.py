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

from sd_coordinator import job_files
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
CREATE TABLE IF NOT EXISTS reruns (
    task_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reruns_by_job ON reruns(job_id);
"""

# Columns added after the first schema: ALTER TABLE adds them to an older database at start.
ADDED_COLUMNS = {
    "jobs": {
        "open": "INTEGER NOT NULL DEFAULT 0",  # 1 while a growing job takes more files
        "copies": "INTEGER NOT NULL DEFAULT 1",  # tasks per file of a growing job
        "cancelled": "INTEGER NOT NULL DEFAULT 0",  # tasks a cancel took out of the queue
        "cancelled_at": "REAL",
        "next_seq": "INTEGER NOT NULL DEFAULT 0",  # a growing job's next task number
    },
    "tasks": {
        "dup_of": "TEXT",  # same content as this task of the job: mirrors its outcome
        "fin": "INTEGER",  # the task's place in its job's order of finishing (1, 2, ...)
        "copy": "INTEGER NOT NULL DEFAULT 0",
    },
}

SCHEMA_ADDED = """
CREATE TABLE IF NOT EXISTS job_files (
    job_id TEXT NOT NULL, name TEXT NOT NULL, input TEXT NOT NULL, PRIMARY KEY (job_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS job_inputs (
    job_id TEXT NOT NULL, input TEXT NOT NULL, copy INTEGER NOT NULL, task_id TEXT NOT NULL,
    PRIMARY KEY (job_id, input, copy)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tasks_dups ON tasks(dup_of) WHERE dup_of IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_by_finish ON tasks(job_id, fin) WHERE fin IS NOT NULL;
"""

FINISHED = ("done", "failed", "cancelled")
TASK_STATES = ("queued", "running", "done", "failed", "cancelled")


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


def _job_summary(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "job_id": row["job_id"],
        "state": job_state(
            row["total"],
            row["done"],
            row["failed"],
            row["started"],
            open=bool(row["open"]),
            cancelled=row["cancelled_at"] is not None,
        ),
        "total": row["total"],
        "done": row["done"],
        "failed": row["failed"],
        "cancelled": row["cancelled"],
        "open": bool(row["open"]),
        "copies": row["copies"],
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
        "seq": row["seq"],
        "copy": row["copy"],
        "dup_of": row["dup_of"],
        "finished_seq": row["fin"],
    }


def _add_columns(db: sqlite3.Connection) -> None:
    for table, columns in ADDED_COLUMNS.items():
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        for column, kind in columns.items():
            if column not in have:
                db.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {kind}')
    db.executescript(SCHEMA_ADDED)


class Store:
    """SQLite-backed jobs and tasks. `start()` before use; `stop()` is idempotent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sql = BatchedSqlite(path, SCHEMA, name="sd-store")

    async def start(self) -> None:
        """Open the database, create the schema, start the batching writer."""
        await self._sql.start()
        await self._call(_add_columns, self.db)

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
            for marks, chunk in _in_chunks(list(stored)):
                for dup in db.execute(
                    f"SELECT task_id, job_id, dup_of FROM tasks WHERE dup_of IN ({marks})"
                    " AND state IN ('queued', 'running')",
                    chunk,
                ).fetchall():
                    stored[dup["task_id"]] = stored[dup["dup_of"]]
                    jobs[dup["task_id"]] = dup["job_id"]
            counts: dict[str, list[int]] = {}  # job_id → [done, failed, finished so far]
            for marks, chunk in _in_chunks(list(dict.fromkeys(jobs.values()))):
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

        return await self._write(op)

    # -- growing jobs (see job_files) -------------------------------------------------------

    async def create_growing_job(self, job_id: str, name: str, ops: str, copies: int) -> None:
        """Insert an open job that takes files batch by batch."""
        await self._write(lambda db: job_files.create(db, job_id, name, ops, copies, time.time()))

    async def append_files(
        self, job_id: str, files: Sequence[tuple[str, str]]
    ) -> job_files.Appended:
        """Add `(name, sha256)` files to an open job (JobGone, JobShut)."""
        return await self._write(lambda db: job_files.append(db, job_id, files, time.time()))

    async def undo_append(self, job_id: str, added: job_files.Appended) -> None:
        """Take back a batch that could not be published."""
        await self._write(lambda db: job_files.undo(db, job_id, added))

    async def close_job(self, job_id: str) -> None:
        """A growing job takes no more files (JobGone)."""
        await self._write(lambda db: job_files.close(db, job_id, time.time()))

    async def cancel_job(self, job_id: str) -> None:
        """Unfinished tasks end cancelled (JobGone; JobShut if already finished)."""
        await self._write(lambda db: job_files.cancel(db, job_id, time.time()))

    async def recently_cancelled(self, limit: int = 1000) -> list[tuple[str, float]]:
        """(job_id, cancelled_at) of the most recently cancelled jobs, newest first."""
        return await self._call(job_files.recently_cancelled, self.db, limit)

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

    async def list_jobs(self, limit: int = 100, before: str | None = None) -> list[dict[str, Any]]:
        """Job summaries, newest first; `before` (a job id) starts after that job."""

        def read() -> list[dict[str, Any]]:
            where, args = "", ()
            if before is not None:
                row = self.db.execute(
                    "SELECT created_at, rowid FROM jobs WHERE job_id = ?", (before,)
                ).fetchone()
                if row is None:
                    return []
                where, args = " WHERE (created_at, rowid) < (?, ?)", tuple(row)
            rows = self.db.execute(
                f"SELECT * FROM jobs{where} ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
            return [_job_summary(r) for r in rows]

        return await self._call(read)

    async def job_summary(self, job_id: str) -> dict[str, Any] | None:
        """A job's summary (counts and state, no tasks), or None: one row, whatever its size."""

        def read() -> dict[str, Any] | None:
            row = self.db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            return None if row is None else _job_summary(row)

        return await self._call(read)

    async def get_job(self, job_id: str, tasks_limit: int = 1000) -> dict[str, Any] | None:
        """A job's summary with the first page of its tasks (`tasks_next`: the next page's
        cursor or None), or None."""
        job = await self.job_summary(job_id)
        if job is None:
            return None
        page = await self.tasks_page(job_id, limit=tasks_limit)
        job["tasks"], job["tasks_next"] = page["tasks"], page["next"]
        return job

    async def tasks_page(
        self,
        job_id: str,
        *,
        state: str | None = None,
        limit: int = 1000,
        cursor: int | None = None,
        order: str = "seq",
    ) -> dict[str, Any]:
        """One page of a job's tasks, in task order (`order="seq"`, cursor: the first seq of
        the page) or in the order they finished (`order="finished"`, only finished tasks,
        cursor: the last `finished_seq` seen). `next` is the cursor of the next page, or None
        at the end; in finished order it is always the last one seen, to poll from."""

        def read() -> dict[str, Any]:
            if order == "finished":
                column, sql = "fin", "SELECT * FROM tasks WHERE job_id = ? AND fin > ?"
            else:
                column, sql = "seq", "SELECT * FROM tasks WHERE job_id = ? AND seq >= ?"
            args: list[Any] = [job_id, 0 if cursor is None else cursor]
            if state is not None:
                sql += " AND state = ?"
                args.append(state)
            rows = self.db.execute(
                f"{sql} ORDER BY {column} LIMIT ?", (*args, limit + 1)
            ).fetchall()
            tasks = [_task_view(r) for r in rows[:limit]]
            reruns = dict(self.db.execute(
                "SELECT task_id, reason FROM reruns WHERE job_id = ?", (job_id,)
            ).fetchall())  # fmt: skip
            for task in tasks:
                task["rerun"] = reruns.get(task["task_id"])
            more = len(rows) > limit
            if order == "finished":
                last = tasks[-1]["finished_seq"] if tasks else (cursor or 0)
                return {"tasks": tasks, "next": last, "more": more}
            return {"tasks": tasks, "next": rows[limit]["seq"] if more else None}

        return await self._call(read)

    async def unfinished_count(self) -> int:
        """Tasks of every job not yet done or failed (queued, running, or still being
        published): what the workers share."""

        def read() -> int:
            row = self.db.execute(
                "SELECT COALESCE(SUM(total - done - failed - cancelled), 0) FROM jobs"
                " WHERE finished_at IS NULL AND cancelled_at IS NULL"
            ).fetchone()
            return max(0, int(row[0]))

        return await self._call(read)

    async def totals(self) -> dict[str, int]:
        """Task counts over all jobs: done, failed and not yet finished."""

        def read() -> dict[str, int]:
            row = self.db.execute(
                "SELECT COALESCE(SUM(total), 0), COALESCE(SUM(done), 0), COALESCE(SUM(failed), 0),"
                " COALESCE(SUM(cancelled), 0) FROM jobs"
            ).fetchone()
            total, done, failed, cancelled = row
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
                "cancelled": cancelled,
                "pending": total - done - failed - cancelled,
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
            sql += " WHERE t.state IN ('queued', 'running') AND t.dup_of IS NULL"
            if unpublished_only:
                sql += " AND t.published = 0"
            return [dict(r) for r in self.db.execute(sql + " ORDER BY j.created_at, t.seq")]

        return await self._call(read)

    # -- backup runs (sd_coordinator.rescue) ------------------------------------------------

    async def tasks_to_rerun(self, task_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The unfinished tasks among `task_ids`, with their job's ops, to publish again."""

        def read() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = []
            for marks, chunk in _in_chunks(task_ids):
                rows += [dict(r) for r in self.db.execute(
                    "SELECT t.*, j.ops FROM tasks t JOIN jobs j USING (job_id)"
                    f" WHERE t.task_id IN ({marks}) AND t.state IN ('queued', 'running')"
                    " AND t.dup_of IS NULL"
                    " ORDER BY t.seq",
                    chunk,
                )]  # fmt: skip
            return rows

        return await self._call(read)

    async def unfinished_published(self, limit: int) -> list[tuple[str, str | None]]:
        """(task_id, worker) of up to `limit` published tasks not yet finished."""

        def read() -> list[tuple[str, str | None]]:
            return [(r[0], r[1]) for r in self.db.execute(
                "SELECT task_id, worker FROM tasks WHERE state IN ('queued', 'running')"
                " AND published = 1 AND dup_of IS NULL LIMIT ?", (limit,),
            )]  # fmt: skip

        return await self._call(read)

    async def note_reruns(self, tasks: Sequence[tuple[str, str]], reason: str) -> None:
        """Record that these (task_id, job_id) were published again, and why (the job view
        marks them)."""
        now = time.time()

        def op(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT OR REPLACE INTO reruns (task_id, job_id, reason, at) VALUES (?,?,?,?)",
                [(task_id, job_id, reason, now) for task_id, job_id in tasks],
            )

        await self._write(op)
