"""The academic records in SQLite. Every write is one BEGIN IMMEDIATE transaction that also
records its events (the outbox) and its reply by request id, so several services sharing the
database serialise their writes and a repeated command is applied once. Not thread-safe: the
service calls it from one thread."""

from __future__ import annotations

import sqlite3
import time
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from sd_academic.errors import Conflict, Invalid, NotFound, Stale
from sd_academic.migrations import migrate

BUSY_TIMEOUT_S = 30.0
REPLY_TTL_S = 24 * 3600


@dataclass(frozen=True)
class Kind:
    """One entity: its table, the fields a client writes, its unique key and what search reads."""

    name: str
    table: str
    fields: tuple[str, ...]
    unique: str
    search: tuple[str, ...]
    columns: str
    source: str
    order: str

    @property
    def select(self) -> str:
        return f"SELECT {self.columns} FROM {self.source}"


PROFESOR = Kind(
    "profesor", "profesores",
    ("nombre", "apellidos", "email", "departamento", "activo"), "email",
    ("p.nombre", "p.apellidos", "p.nombre || ' ' || p.apellidos", "p.email"),
    "p.*, (SELECT COUNT(*) FROM grupos g WHERE g.profesor_id = p.id) AS grupos",
    "profesores p",
    "p.apellidos COLLATE NOCASE, p.nombre COLLATE NOCASE, p.id",
)  # fmt: skip
GRUPO = Kind(
    "grupo", "grupos",
    ("clave", "materia", "periodo", "cupo", "horario", "profesor_id"), "clave",
    ("g.clave", "g.materia"),
    "g.*, p.nombre || ' ' || p.apellidos AS profesor",
    "grupos g LEFT JOIN profesores p ON p.id = g.profesor_id",
    "g.clave COLLATE NOCASE, g.id",
)  # fmt: skip
KINDS = {k.name: k for k in (PROFESOR, GRUPO)}
ALIAS = {"profesor": "p", "grupo": "g"}


def now_iso() -> str:
    """UTC now, ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _row(kind: Kind, row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    if kind is PROFESOR:
        data["activo"] = bool(data["activo"])
    return data


def fold(text: object) -> str:
    """`text` without accents, case-folded: a search for "garcia" finds "García"."""
    decomposed = unicodedata.normalize("NFKD", str(text or ""))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass
class Event:
    """A change to publish: `routing_key` such as `profesor.created`, and its body."""

    routing_key: str
    body: dict[str, Any]


class AcademicStore:
    """SQLite file of profesores and grupos (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def open(self) -> int:
        """Open the file (creating it) and apply pending migrations; return the schema version."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S,
                               check_same_thread=False)  # fmt: skip
        conn.row_factory = sqlite3.Row
        conn.create_function("fold", 1, fold, deterministic=True)
        conn.execute("PRAGMA journal_mode=WAL")
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

    def outbox(self, seqs: list[int] | None = None, older_than_s: float = 0.0
               ) -> list[tuple[int, str, dict[str, Any]]]:  # fmt: skip
        """Unpublished events: those of `seqs`, or every one older than `older_than_s`."""
        if seqs is not None:
            marks = ",".join("?" * len(seqs))
            rows = self.conn.execute(
                f"SELECT seq, routing_key, body FROM outbox WHERE seq IN ({marks}) ORDER BY seq",
                seqs,
            ).fetchall()
        else:
            rows = self.conn.execute(
                "SELECT seq, routing_key, body FROM outbox WHERE created_at < ? ORDER BY seq "
                "LIMIT 1000", (time.time() - older_than_s,),
            ).fetchall()  # fmt: skip
        return [(int(r[0]), str(r[1]), orjson.loads(r[2])) for r in rows]

    def published(self, seqs: list[int]) -> None:
        """Forget events the broker confirmed."""
        if seqs:
            with self._write() as conn:
                conn.execute(f"DELETE FROM outbox WHERE seq IN ({','.join('?' * len(seqs))})", seqs)

    # -- reads -----------------------------------------------------------------------------

    def get(self, kind: Kind, record_id: int, conn: sqlite3.Connection | None = None
            ) -> dict[str, Any]:  # fmt: skip
        """One record, or NotFound."""
        row = (
            (conn or self.conn)
            .execute(f"{kind.select} WHERE {ALIAS[kind.name]}.id = ?", (record_id,))
            .fetchone()
        )
        if row is None:
            raise NotFound(f"no {kind.name} with id {record_id}")
        return _row(kind, row)

    def list_page(self, kind: Kind, *, q: str = "", page: int = 1, per_page: int = 20,
             filters: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        """A page of records matching `q` (any search column contains it) and `filters`."""
        alias = ALIAS[kind.name]
        where: list[str] = []
        params: list[Any] = []
        if q:
            like = " OR ".join(f"fold({c}) LIKE ? ESCAPE '\\'" for c in kind.search)
            where.append(f"({like})")
            params += [_like(fold(q))] * len(kind.search)
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
        return {"items": [_row(kind, r) for r in rows], "total": int(total), "page": page,
                "per_page": per_page}  # fmt: skip

    def all(self, kind: Kind) -> list[dict[str, Any]]:
        """Every record, in list order (for export)."""
        rows = self.conn.execute(f"{kind.select} ORDER BY {kind.order}").fetchall()
        return [_row(kind, r) for r in rows]

    def find_by_key(self, conn: sqlite3.Connection, kind: Kind, key: str) -> dict[str, Any] | None:
        """The record whose unique key is `key` (case-insensitive)."""
        row = conn.execute(
            f"{kind.select} WHERE {ALIAS[kind.name]}.{kind.unique} = ?", (key,)
        ).fetchone()
        return None if row is None else _row(kind, row)

    # -- writes (called inside `write`) ----------------------------------------------------

    def _check_refs(self, conn: sqlite3.Connection, kind: Kind, data: dict[str, Any]) -> None:
        profesor_id = data.get("profesor_id")
        if kind is GRUPO and profesor_id is not None:
            if (
                conn.execute("SELECT 1 FROM profesores WHERE id = ?", (profesor_id,)).fetchone()
                is None
            ):
                raise Invalid.field("profesor_id", f"no profesor with id {profesor_id}")

    def _duplicate(self, kind: Kind, data: dict[str, Any]) -> Conflict:
        key = data.get(kind.unique)
        return Conflict(
            f"{kind.unique}: a {kind.name} with {kind.unique} {key!r} already exists",
            errors=[{"field": kind.unique, "reason": f"{key!r} is already in use"}],
        )

    def _event(self, events: list[Event], kind: Kind, verb: str, data: dict[str, Any]) -> None:
        events.append(Event(f"{kind.name}.{verb}", {
            "event_id": uuid.uuid4().hex, "type": f"{kind.name}.{verb}", "entity": kind.name,
            "id": data["id"], "data": data, "at": now_iso(),
        }))  # fmt: skip

    def create(self, conn: sqlite3.Connection, events: list[Event], kind: Kind,
               data: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        """Insert a record; Conflict on a duplicate key."""
        self._check_refs(conn, kind, data)
        at = now_iso()
        columns = [*kind.fields, "created_at", "updated_at"]
        values = [data.get(f) for f in kind.fields] + [at, at]
        try:
            cursor = conn.execute(
                f"INSERT INTO {kind.table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})", values,
            )  # fmt: skip
        except sqlite3.IntegrityError as exc:
            raise self._duplicate(kind, data) from exc
        record = self.get(kind, int(cursor.lastrowid or 0), conn)
        self._event(events, kind, "created", record)
        return record

    def _current(self, conn: sqlite3.Connection, kind: Kind, record_id: int,
                 if_version: int | None) -> dict[str, Any]:  # fmt: skip
        current = self.get(kind, record_id, conn)
        if if_version is not None and if_version != current["version"]:
            raise Stale(
                f"{kind.name} {record_id} changed since you read it (your version {if_version}, "
                f"now {current['version']}): reload it and apply your change again"
            )
        return current

    def update(self, conn: sqlite3.Connection, events: list[Event], kind: Kind, record_id: int,
               changes: dict[str, Any], if_version: int | None) -> dict[str, Any]:  # fmt: skip
        """Change the fields in `changes`; Stale if the version moved, Conflict on a duplicate."""
        current = self._current(conn, kind, record_id, if_version)
        merged = {f: changes.get(f, current[f]) for f in kind.fields}
        if all(merged[f] == current[f] for f in kind.fields):
            return current
        self._check_refs(conn, kind, merged)
        assignments = ", ".join(f"{f} = ?" for f in kind.fields)
        try:
            conn.execute(
                f"UPDATE {kind.table} SET {assignments}, version = version + 1, updated_at = ? "
                "WHERE id = ?", [*(merged[f] for f in kind.fields), now_iso(), record_id],
            )  # fmt: skip
        except sqlite3.IntegrityError as exc:
            raise self._duplicate(kind, merged) from exc
        record = self.get(kind, record_id, conn)
        self._event(events, kind, "updated", record)
        return record

    def delete(self, conn: sqlite3.Connection, events: list[Event], kind: Kind, record_id: int,
               if_version: int | None, unassign: bool) -> dict[str, Any]:  # fmt: skip
        """Delete a record. A profesor who still teaches grupos: Conflict, unless `unassign`,
        which leaves those grupos without a profesor first."""
        current = self._current(conn, kind, record_id, if_version)
        if kind is PROFESOR:
            taught = conn.execute(
                "SELECT id, clave FROM grupos WHERE profesor_id = ? ORDER BY clave", (record_id,)
            ).fetchall()
            if taught and not unassign:
                claves = ", ".join(r["clave"] for r in taught[:10])
                raise Conflict(
                    f"profesor {record_id} still teaches {len(taught)} grupo(s) ({claves}): "
                    "assign them to someone else first, or delete with unassign=true"
                )
            for grupo in taught:
                self.update(conn, events, GRUPO, int(grupo["id"]), {"profesor_id": None}, None)
        conn.execute(f"DELETE FROM {kind.table} WHERE id = ?", (record_id,))
        self._event(events, kind, "deleted", {"id": record_id, kind.unique: current[kind.unique]})
        return {"deleted": record_id}
