"""The store's reads: task states, job summaries and task pages, counts, and the unfinished
tasks to publish again. Each function runs on the database thread (`Store._call`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sd_coordinator.store_rows import JobSummary, TaskPage, TaskView, Totals, UnfinishedTask
from sd_coordinator.store_schema import in_chunks

# The states of tasks not yet finished, counted from the partial index over them; finished
# tasks are counted by their jobs' counters, never by a scan.
UNFINISHED_BY_STATE = (
    "SELECT state, COUNT(*) FROM tasks WHERE state IN ('queued', 'running') GROUP BY state"
)


def task_state(db: sqlite3.Connection, task_id: str) -> str | None:
    """The task's state, or None if unknown."""
    row = db.execute("SELECT state FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    return None if row is None else str(row[0])


def task_states(db: sqlite3.Connection, task_ids: Sequence[str]) -> dict[str, str]:
    """The state of each known task among `task_ids`."""
    states: dict[str, str] = {}
    for marks, chunk in in_chunks(task_ids):
        for task_id, state in db.execute(
            f"SELECT task_id, state FROM tasks WHERE task_id IN ({marks})", chunk
        ):
            states[task_id] = state
    return states


def count_by_state(db: sqlite3.Connection) -> dict[str, int]:
    """How many tasks are queued, running, done and failed."""
    done, failed = db.execute(
        "SELECT COALESCE(SUM(done), 0), COALESCE(SUM(failed), 0) FROM jobs"
    ).fetchone()
    counts = {"queued": 0, "running": 0, "done": done, "failed": failed}
    for state, count in db.execute(UNFINISHED_BY_STATE):
        counts[state] = count
    return counts


def list_jobs(db: sqlite3.Connection, limit: int, before: str | None) -> list[JobSummary]:
    """Job summaries, newest first; `before` (a job id) starts after that job."""
    where, args = "", ()
    if before is not None:
        row = db.execute(
            "SELECT created_at, rowid FROM jobs WHERE job_id = ?", (before,)
        ).fetchone()
        if row is None:
            return []
        where, args = " WHERE (created_at, rowid) < (?, ?)", tuple(row)
    rows = db.execute(
        f"SELECT * FROM jobs{where} ORDER BY created_at DESC, rowid DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [JobSummary.from_row(r) for r in rows]


def job_summary(db: sqlite3.Connection, job_id: str) -> JobSummary | None:
    """A job's summary, or None."""
    row = db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    return None if row is None else JobSummary.from_row(row)


def tasks_page(
    db: sqlite3.Connection,
    job_id: str,
    state: str | None,
    limit: int,
    cursor: int | None,
    order: str,
) -> TaskPage:
    """One page of a job's tasks in task order or in the order they finished (see
    `Store.tasks_page`)."""
    if order == "finished":
        column, sql = "fin", "SELECT * FROM tasks WHERE job_id = ? AND fin > ?"
    else:
        column, sql = "seq", "SELECT * FROM tasks WHERE job_id = ? AND seq >= ?"
    args: list[Any] = [job_id, 0 if cursor is None else cursor]
    if state is not None:
        sql += " AND state = ?"
        args.append(state)
    rows = db.execute(f"{sql} ORDER BY {column} LIMIT ?", (*args, limit + 1)).fetchall()
    reruns = dict(
        db.execute("SELECT task_id, reason FROM reruns WHERE job_id = ?", (job_id,)).fetchall()
    )
    tasks = [TaskView.from_row(r, reruns.get(r["task_id"])) for r in rows[:limit]]
    if order == "finished":
        return TaskPage(tasks, tasks[-1].finished_seq if tasks else (cursor or 0))
    return TaskPage(tasks, rows[limit]["seq"] if len(rows) > limit else None)


def unfinished_count(db: sqlite3.Connection) -> int:
    """Tasks of every job not yet done, failed or cancelled."""
    row = db.execute(
        "SELECT COALESCE(SUM(total - done - failed - cancelled), 0) FROM jobs"
        " WHERE finished_at IS NULL AND cancelled_at IS NULL"
    ).fetchone()
    return max(0, int(row[0]))


def totals(db: sqlite3.Connection) -> Totals:
    """Task counts over all jobs."""
    total, done, failed, cancelled = db.execute(
        "SELECT COALESCE(SUM(total), 0), COALESCE(SUM(done), 0), COALESCE(SUM(failed), 0),"
        " COALESCE(SUM(cancelled), 0) FROM jobs"
    ).fetchone()
    counts = {"queued": 0, "running": 0}
    counts.update(db.execute(UNFINISHED_BY_STATE).fetchall())
    pending = total - done - failed - cancelled
    return Totals(total, done, failed, cancelled, pending, counts["queued"], counts["running"])


def is_stored_result(db: sqlite3.Connection, filename: str) -> bool:
    """Whether `filename` (`<task_id>.png`) is the recorded result of a finished task."""
    row = db.execute(
        "SELECT 1 FROM tasks WHERE task_id = ? AND result = ? AND state = 'done'",
        (filename.removesuffix(".png"), filename),
    ).fetchone()
    return row is not None


def unfinished_tasks(db: sqlite3.Connection, unpublished_only: bool) -> list[UnfinishedTask]:
    """Unfinished tasks (not mirrors of another), oldest job first, in task order."""
    sql = "SELECT t.*, j.ops FROM tasks t JOIN jobs j USING (job_id)"
    sql += " WHERE t.state IN ('queued', 'running') AND t.dup_of IS NULL"
    if unpublished_only:
        sql += " AND t.published = 0"
    return [UnfinishedTask.from_row(r) for r in db.execute(sql + " ORDER BY j.created_at, t.seq")]


def tasks_to_rerun(db: sqlite3.Connection, task_ids: Sequence[str]) -> list[UnfinishedTask]:
    """The unfinished tasks among `task_ids` (not mirrors of another), in task order per
    chunk of ids."""
    rows: list[UnfinishedTask] = []
    for marks, chunk in in_chunks(task_ids):
        rows += [
            UnfinishedTask.from_row(r)
            for r in db.execute(
                "SELECT t.*, j.ops FROM tasks t JOIN jobs j USING (job_id)"
                f" WHERE t.task_id IN ({marks}) AND t.state IN ('queued', 'running')"
                " AND t.dup_of IS NULL ORDER BY t.seq",
                chunk,
            )
        ]
    return rows


def unfinished_published(db: sqlite3.Connection, limit: int) -> list[tuple[str, str | None]]:
    """(task_id, worker) of up to `limit` published tasks not yet finished."""
    return [
        (r[0], r[1])
        for r in db.execute(
            "SELECT task_id, worker FROM tasks WHERE state IN ('queued', 'running')"
            " AND published = 1 AND dup_of IS NULL LIMIT ?",
            (limit,),
        )
    ]
