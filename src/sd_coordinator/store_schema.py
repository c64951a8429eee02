"""The store's tables, how a database made by an older version is brought up to date, and
the one SQL helper its reads and writes share."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

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


def add_columns(db: sqlite3.Connection) -> None:
    """Bring an older database up to date: add the columns and tables it lacks."""
    for table, columns in ADDED_COLUMNS.items():
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        for column, kind in columns.items():
            if column not in have:
                db.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {kind}')
    db.executescript(SCHEMA_ADDED)


# SQLite allows a limited number of parameters per statement: long id lists go in chunks.
IN_CHUNK = 500


def in_chunks(ids: Sequence[str]) -> Iterator[tuple[str, Sequence[str]]]:
    """(placeholders, ids) for `... IN (placeholders)`, a chunk of at most IN_CHUNK at a time."""
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        yield ",".join("?" * len(chunk)), chunk
