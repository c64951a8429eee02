"""The academic records in SQLite. Every write is one BEGIN IMMEDIATE transaction that also
records its events (the outbox) and its reply by request id, so several services sharing the
database serialise their writes and a repeated command is applied once. Not thread-safe: the
service calls it from one thread."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from sd_academic import records
from sd_academic.kinds import ALIAS, Event, Kind, fold, like_pattern, row_dict
from sd_academic.migrations import migrate

BUSY_TIMEOUT_S = 30.0
REPLY_TTL_S = 24 * 3600
SQL_BATCH = 500  # values bound in one IN (...)


def wal_mode(conn: sqlite3.Connection, timeout_s: float = BUSY_TIMEOUT_S) -> None:
    """`PRAGMA journal_mode=WAL`, retried while the file is busy: when another process is
    setting up the same new file (two services started at once), SQLite answers "database is
    locked" at once instead of waiting, as waiting for that lock could deadlock."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class AcademicStore:
    """SQLite file of profesores and grupos (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def open(self) -> int:
        """Open the file (creating it) and apply pending migrations; return the schema version."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.create_function("fold", 1, fold, deterministic=True)
        wal_mode(conn)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        self._conn = conn
        return migrate(conn)

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("AcademicStore used before open()")
        return self._conn

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def stored_reply(self, request_id: str) -> Any | None:
        """The reply already given to `request_id`, if that write was applied."""
        row = self.conn.execute(
            "SELECT reply FROM replies WHERE request_id = ?", (request_id,)
        ).fetchone()
        return None if row is None else orjson.loads(row[0])

    def write(self, request_id: str | None, change: Any) -> tuple[Any, list[int], bool]:
        """Run `change(conn, events) -> result` in one transaction with its events and reply.
        Returns (result, outbox seqs to publish, replayed): a request id seen before returns
        the stored reply and applies nothing."""
        with self._write() as conn:
            if request_id is not None:
                row = conn.execute(
                    "SELECT reply FROM replies WHERE request_id = ?", (request_id,)
                ).fetchone()
                if row is not None:
                    return orjson.loads(row[0]), [], True
            events: list[Event] = []
            result = change(conn, events)
            at = time.time()
            seqs = []
            for event in events:
                cursor = conn.execute(
                    "INSERT INTO outbox (routing_key, body, created_at) VALUES (?, ?, ?)",
                    (event.routing_key, orjson.dumps(event.body).decode(), at),
                )
                seqs.append(int(cursor.lastrowid or 0))
            if request_id is not None:
                conn.execute(
                    "INSERT INTO replies (request_id, reply, created_at) VALUES (?, ?, ?)",
                    (request_id, orjson.dumps(result).decode(), at),
                )
                conn.execute("DELETE FROM replies WHERE created_at < ?", (at - REPLY_TTL_S,))
            return result, seqs, False

    def outbox(
        self, seqs: list[int] | None = None, older_than_s: float = 0.0
    ) -> list[tuple[int, str, dict[str, Any]]]:
        """Unpublished events: those of `seqs`, or every one older than `older_than_s`."""
        if seqs is not None:
            rows = []
            for start in range(0, len(seqs), SQL_BATCH):
                chunk = seqs[start : start + SQL_BATCH]
                rows += self.conn.execute(
                    "SELECT seq, routing_key, body FROM outbox "
                    f"WHERE seq IN ({','.join('?' * len(chunk))}) ORDER BY seq",
                    chunk,
                ).fetchall()
        else:
            rows = self.conn.execute(
                "SELECT seq, routing_key, body FROM outbox WHERE created_at < ? ORDER BY seq "
                "LIMIT 1000",
                (time.time() - older_than_s,),
            ).fetchall()
        return [(int(r[0]), str(r[1]), orjson.loads(r[2])) for r in rows]

    def published(self, seqs: list[int]) -> None:
        """Forget events the broker confirmed."""
        if seqs:
            with self._write() as conn:
                for start in range(0, len(seqs), SQL_BATCH):
                    chunk = seqs[start : start + SQL_BATCH]
                    marks = ",".join("?" * len(chunk))
                    conn.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", chunk)

    # -- reads -----------------------------------------------------------------------------

    def get(self, kind: Kind, record_id: int) -> dict[str, Any]:
        """One record, or NotFound."""
        return records.get(self.conn, kind, record_id)

    def list_page(
        self,
        kind: Kind,
        *,
        q: str = "",
        page: int = 1,
        per_page: int = 20,
        filters: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A page of records matching `q` (any search column contains it) and `filters`."""
        alias = ALIAS[kind.name]
        where: list[str] = []
        params: list[Any] = []
        if q:
            like = " OR ".join(f"fold({c}) LIKE ? ESCAPE '\\'" for c in kind.search)
            where.append(f"({like})")
            params += [like_pattern(fold(q))] * len(kind.search)
        for column, value in (filters or {}).items():
            if value is None:
                continue
            where.append(f"{alias}.{column} = ?")
            params.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        total = self.conn.execute(f"SELECT COUNT(*) FROM {kind.source}{clause}", params).fetchone()[
            0
        ]
        rows = self.conn.execute(
            f"{kind.select}{clause} ORDER BY {kind.order} LIMIT ? OFFSET ?",
            [*params, per_page, (page - 1) * per_page],
        ).fetchall()
        return {
            "items": [row_dict(kind, r) for r in rows],
            "total": int(total),
            "page": page,
            "per_page": per_page,
        }

    def all(self, kind: Kind) -> list[dict[str, Any]]:
        """Every record, in list order (for export)."""
        rows = self.conn.execute(f"{kind.select} ORDER BY {kind.order}").fetchall()
        return [row_dict(kind, r) for r in rows]
