"""Versioned schema changes, applied in order at start (PRAGMA user_version is the version).

Append a migration to change the schema; never edit one that has shipped."""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: profesores and grupos.
    (
        """CREATE TABLE profesores (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            nombre TEXT NOT NULL,
            apellidos TEXT NOT NULL,
            email TEXT NOT NULL UNIQUE COLLATE NOCASE,
            departamento TEXT NOT NULL DEFAULT '',
            activo INTEGER NOT NULL DEFAULT 1,
            version INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE grupos (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            clave TEXT NOT NULL UNIQUE COLLATE NOCASE,
            materia TEXT NOT NULL,
            periodo TEXT NOT NULL,
            cupo INTEGER NOT NULL CHECK (cupo > 0),
            horario TEXT NOT NULL DEFAULT '',
            profesor_id INTEGER REFERENCES profesores(id),
            version INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX grupos_by_profesor ON grupos(profesor_id)",
        "CREATE INDEX grupos_by_periodo ON grupos(periodo)",
    ),
    # 2: replies to writes by request id, so a redelivered or retried command is applied once.
    (
        """CREATE TABLE replies (
            request_id TEXT PRIMARY KEY,
            reply TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX replies_by_time ON replies(created_at)",
    ),
    # 3: events written with their change and published after it commits (a transactional outbox).
    (
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            routing_key TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at REAL NOT NULL
        )""",
    ),
)


def schema_version(conn: sqlite3.Connection) -> int:
    """The version the database is at."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration the database lacks, each in its own transaction; return the
    version reached. BEGIN IMMEDIATE: two services starting together apply each one once."""
    for version, statements in enumerate(MIGRATIONS, start=1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(conn) < version:
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return schema_version(conn)
