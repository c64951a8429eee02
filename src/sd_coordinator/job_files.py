"""Growing jobs in SQLite: created open, fed files batch by batch, closed or cancelled.

Each function runs on the store's database thread inside one write transaction. Within a job a
file is known by its name (`job_files`) and its content by sha256 and copy (`job_inputs`): the
same name sent again with the same content (a retried batch) adds nothing, and the same content
under another name adds a task that is never published but mirrors the first one's outcome
(`tasks.dup_of`, see `store_writes.finish_many`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field


class JobGone(Exception):
    """The job does not exist."""


class JobShut(Exception):
    """The job takes no more files (closed or cancelled), or is already finished."""


@dataclass
class Appended:
    """What one batch added: an answer per file, and the tasks to publish."""

    answers: list[dict[str, object]] = field(default_factory=list)
    # (task_id, sha256, copy) of every new task that must be published
    publish: list[tuple[str, str, int]] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)  # every task row the batch inserted
    names: list[str] = field(default_factory=list)  # every name the batch recorded


INSERT_TASK = (
    "INSERT INTO tasks (task_id, job_id, seq, type, state, input, filename, copy, dup_of,"
    " worker, result, output, error, fin, finished_at)"
    " VALUES (?, ?, ?, 'image', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def task_id_for(job_id: str, seq: int) -> str:
    """A growing job's task id: the job id's first 64 bits, then the task's number, so a job's
    rows sit together in the primary-key index (see `submit._new_ids`)."""
    return f"{job_id[:16]}{seq:016x}"


def create(
    db: sqlite3.Connection, job_id: str, name: str, ops: str, copies: int, now: float
) -> None:
    """Insert an open job with no tasks yet."""
    db.execute(
        "INSERT INTO jobs (job_id, kind, name, ops, total, created_at, open, copies, next_seq)"
        " VALUES (?, 'files', ?, ?, 0, ?, 1, ?, 0)",
        (job_id, name, ops, now, copies),
    )


def _open_job(db: sqlite3.Connection, job_id: str) -> sqlite3.Row:
    job = db.execute(
        "SELECT open, cancelled_at, copies, next_seq, done, failed FROM jobs WHERE job_id = ?",
        (job_id,),
    ).fetchone()
    if job is None:
        raise JobGone(job_id)
    if job["cancelled_at"] is not None:
        raise JobShut(f"job {job_id} was cancelled; it takes no more files")
    if not job["open"]:
        raise JobShut(f"job {job_id} is closed; it takes no more files (create a new job)")
    return job


def append(
    db: sqlite3.Connection, job_id: str, files: Sequence[tuple[str, str]], now: float
) -> Appended:
    """Add `(name, sha256)` files to an open job, `copies` tasks each."""
    job = _open_job(db, job_id)
    seq, copies = job["next_seq"], job["copies"]
    finished = job["done"] + job["failed"]
    added = Appended()
    done = failed = 0
    rows: list[tuple[object, ...]] = []
    for name, sha256 in files:
        known = db.execute(
            "SELECT input FROM job_files WHERE job_id = ? AND name = ?", (job_id, name)
        ).fetchone()
        if known is not None:
            if known[0] == sha256:
                added.answers.append(
                    {
                        "name": name,
                        "status": "duplicate",
                        "tasks": 0,
                        "detail": "already in this job",
                    }
                )
            else:
                added.answers.append(
                    {
                        "name": name,
                        "status": "rejected",
                        "tasks": 0,
                        "detail": "a file of this name with other content is already in this job",
                    }
                )
            continue
        db.execute("INSERT INTO job_files VALUES (?, ?, ?)", (job_id, name, sha256))
        added.names.append(name)
        same_as = None
        for copy in range(copies):
            task_id = task_id_for(job_id, seq)
            original = db.execute(
                "SELECT t.task_id, t.state, t.worker, t.result, t.output, t.error, t.filename"
                " FROM job_inputs i JOIN tasks t USING (task_id)"
                " WHERE i.job_id = ? AND i.input = ? AND i.copy = ?",
                (job_id, sha256, copy),
            ).fetchone()
            if original is None:
                db.execute(
                    "INSERT INTO job_inputs VALUES (?, ?, ?, ?)", (job_id, sha256, copy, task_id)
                )
                rows.append(
                    (
                        task_id,
                        job_id,
                        seq,
                        "queued",
                        sha256,
                        name,
                        copy,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                    )
                )
                added.publish.append((task_id, sha256, copy))
            else:
                same_as = original["filename"]
                state, fin, finished_at = original["state"], None, None
                if state in ("done", "failed"):
                    finished += 1
                    fin, finished_at = finished, now
                    done += state == "done"
                    failed += state == "failed"
                else:
                    state = "queued"
                rows.append(
                    (
                        task_id,
                        job_id,
                        seq,
                        state,
                        sha256,
                        name,
                        copy,
                        original["task_id"],
                        original["worker"],
                        original["result"],
                        original["output"],
                        original["error"],
                        fin,
                        finished_at,
                    )
                )
            # At once: a later file of this batch with the same content finds it.
            db.execute(INSERT_TASK, rows[-1])
            added.task_ids.append(task_id)
            seq += 1
        answer: dict[str, object] = {"name": name, "status": "queued", "tasks": copies}
        if same_as is not None:
            answer["same_as"] = same_as
        added.answers.append(answer)
    db.execute(
        "UPDATE jobs SET total = total + ?, next_seq = ?, done = done + ?, failed = failed + ?"
        " WHERE job_id = ?",
        (len(rows), seq, done, failed, job_id),
    )
    return added


def undo(db: sqlite3.Connection, job_id: str, added: Appended) -> None:
    """Take back a batch whose tasks could not be published. Their ids are never reused; a
    name sent meanwhile with the same content as one of them ends failed (send it again)."""
    ids = added.task_ids
    gone: set[str] = set()
    done = failed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in db.execute(
            f"SELECT task_id, state FROM tasks WHERE task_id IN ({marks})", chunk
        ).fetchall():
            gone.add(row[0])
            done += row[1] == "done"
            failed += row[1] == "failed"
        db.execute(f"DELETE FROM tasks WHERE task_id IN ({marks})", chunk)
        db.execute(f"DELETE FROM job_inputs WHERE task_id IN ({marks})", chunk)
        orphaned = db.execute(
            "UPDATE tasks SET state = 'failed', error = 'its content was in a batch that could"
            " not be queued; send it again' WHERE dup_of IN"
            f" ({marks}) AND state IN ('queued', 'running')",
            chunk,
        ).rowcount
        failed -= orphaned
    db.executemany(
        "DELETE FROM job_files WHERE job_id = ? AND name = ?", [(job_id, n) for n in added.names]
    )
    db.execute(
        "UPDATE jobs SET total = total - ?, done = done - ?, failed = failed - ? WHERE job_id = ?",
        (len(gone), done, failed, job_id),
    )


def close(db: sqlite3.Connection, job_id: str, now: float) -> None:
    """Close a job: it takes no more files, and is finished once its tasks are."""
    job = db.execute("SELECT cancelled_at FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    if job is None:
        raise JobGone(job_id)
    if job[0] is not None:
        return
    db.execute(
        "UPDATE jobs SET open = 0, finished_at = CASE WHEN done + failed >= total THEN"
        " COALESCE(finished_at, ?) END WHERE job_id = ? AND open = 1",
        (now, job_id),
    )


def cancel(db: sqlite3.Connection, job_id: str, now: float) -> None:
    """Cancel a job: its unfinished tasks end `cancelled`, what was done stays."""
    job = db.execute(
        "SELECT open, cancelled_at, total, done, failed FROM jobs WHERE job_id = ?", (job_id,)
    ).fetchone()
    if job is None:
        raise JobGone(job_id)
    if job["cancelled_at"] is not None:
        return
    if not job["open"] and job["done"] + job["failed"] >= job["total"]:
        raise JobShut(f"job {job_id} has already finished; there is nothing to cancel")
    cancelled = db.execute(
        "UPDATE tasks SET state = 'cancelled', finished_at = ?"
        " WHERE job_id = ? AND state IN ('queued', 'running')",
        (now, job_id),
    ).rowcount
    db.execute(
        "UPDATE jobs SET open = 0, cancelled = ?, cancelled_at = ?, finished_at = ?"
        " WHERE job_id = ?",
        (cancelled, now, now, job_id),
    )


def recently_cancelled(db: sqlite3.Connection, limit: int) -> list[tuple[str, float]]:
    """(job_id, cancelled_at) of the most recently cancelled jobs, newest first."""
    return [
        (r[0], r[1])
        for r in db.execute(
            "SELECT job_id, cancelled_at FROM jobs WHERE cancelled_at IS NOT NULL"
            " ORDER BY cancelled_at DESC LIMIT ?",
            (limit,),
        )
    ]
