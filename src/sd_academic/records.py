"""Reading and changing profesores and grupos inside a transaction the store opened: each
change appends its events, and refuses with a clear error (404, 409, 412, 422)."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from sd_academic.errors import Conflict, Invalid, NotFound, Stale
from sd_academic.kinds import ALIAS, GRUPO, PROFESOR, Event, Kind, now_iso, row_dict


def get(conn: sqlite3.Connection, kind: Kind, record_id: int) -> dict[str, Any]:
    """One record, or NotFound."""
    row = conn.execute(f"{kind.select} WHERE {ALIAS[kind.name]}.id = ?", (record_id,)).fetchone()
    if row is None:
        raise NotFound(f"no {kind.name} with id {record_id}")
    return row_dict(kind, row)


def find_by_key(conn: sqlite3.Connection, kind: Kind, key: str) -> dict[str, Any] | None:
    """The record whose unique key is `key` (case-insensitive)."""
    row = conn.execute(
        f"{kind.select} WHERE {ALIAS[kind.name]}.{kind.unique} = ?", (key,)
    ).fetchone()
    return None if row is None else row_dict(kind, row)


# -- writes (called inside `write`) ----------------------------------------------------


def _check_refs(conn: sqlite3.Connection, kind: Kind, data: dict[str, Any]) -> None:
    profesor_id = data.get("profesor_id")
    if kind is GRUPO and profesor_id is not None:
        if conn.execute("SELECT 1 FROM profesores WHERE id = ?", (profesor_id,)).fetchone() is None:
            raise Invalid.field("profesor_id", f"no profesor with id {profesor_id}")


def _duplicate(kind: Kind, data: dict[str, Any]) -> Conflict:
    key = data.get(kind.unique)
    return Conflict(
        f"{kind.unique}: a {kind.name} with {kind.unique} {key!r} already exists",
        errors=[{"field": kind.unique, "reason": f"{key!r} is already in use"}],
    )


def _event(events: list[Event], kind: Kind, verb: str, data: dict[str, Any]) -> None:
    events.append(
        Event(
            f"{kind.name}.{verb}",
            {
                "event_id": uuid.uuid4().hex,
                "type": f"{kind.name}.{verb}",
                "entity": kind.name,
                "id": data["id"],
                "data": data,
                "at": now_iso(),
            },
        )
    )


def create(
    conn: sqlite3.Connection, events: list[Event], kind: Kind, data: dict[str, Any]
) -> dict[str, Any]:
    """Insert a record; Conflict on a duplicate key."""
    _check_refs(conn, kind, data)
    at = now_iso()
    columns = [*kind.fields, "created_at", "updated_at"]
    values = [data.get(f) for f in kind.fields] + [at, at]
    try:
        cursor = conn.execute(
            f"INSERT INTO {kind.table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})",
            values,
        )
    except sqlite3.IntegrityError as exc:
        raise _duplicate(kind, data) from exc
    record = get(conn, kind, int(cursor.lastrowid or 0))
    _event(events, kind, "created", record)
    return record


def _current(
    conn: sqlite3.Connection, kind: Kind, record_id: int, if_version: int | None
) -> dict[str, Any]:
    current = get(conn, kind, record_id)
    if if_version is not None and if_version != current["version"]:
        raise Stale(
            f"{kind.name} {record_id} changed since you read it (your version {if_version}, "
            f"now {current['version']}): reload it and apply your change again"
        )
    return current


def update(
    conn: sqlite3.Connection,
    events: list[Event],
    kind: Kind,
    record_id: int,
    changes: dict[str, Any],
    if_version: int | None,
) -> dict[str, Any]:
    """Change the fields in `changes`; Stale if the version moved, Conflict on a duplicate."""
    current = _current(conn, kind, record_id, if_version)
    merged = {f: changes.get(f, current[f]) for f in kind.fields}
    if all(merged[f] == current[f] for f in kind.fields):
        return current
    _check_refs(conn, kind, merged)
    assignments = ", ".join(f"{f} = ?" for f in kind.fields)
    try:
        conn.execute(
            f"UPDATE {kind.table} SET {assignments}, version = version + 1, updated_at = ? "
            "WHERE id = ?",
            [*(merged[f] for f in kind.fields), now_iso(), record_id],
        )
    except sqlite3.IntegrityError as exc:
        raise _duplicate(kind, merged) from exc
    record = get(conn, kind, record_id)
    _event(events, kind, "updated", record)
    return record


def delete(
    conn: sqlite3.Connection,
    events: list[Event],
    kind: Kind,
    record_id: int,
    if_version: int | None,
    unassign: bool,
) -> dict[str, Any]:
    """Delete a record. A profesor who still teaches grupos: Conflict, unless `unassign`,
    which leaves those grupos without a profesor first."""
    current = _current(conn, kind, record_id, if_version)
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
            update(conn, events, GRUPO, int(grupo["id"]), {"profesor_id": None}, None)
    conn.execute(f"DELETE FROM {kind.table} WHERE id = ?", (record_id,))
    _event(events, kind, "deleted", {"id": record_id, kind.unique: current[kind.unique]})
    return {"deleted": record_id}
