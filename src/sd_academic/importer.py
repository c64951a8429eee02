"""A CSV import inside one transaction: each row created, updated, left unchanged or refused
(in a savepoint, so a refused row changes nothing), with the reason."""

from __future__ import annotations

import sqlite3
from typing import Any

from pydantic import BaseModel, ValidationError

from sd_academic import csvio, records
from sd_academic.errors import AcademicError, Invalid
from sd_academic.kinds import GRUPO, PROFESOR, Event, Kind
from sd_academic.models import FULL, PARTIAL, field_errors, invalid


def import_rows(
    conn: sqlite3.Connection,
    events: list[Event],
    kind: Kind,
    rows: list[tuple[int, dict[str, str]]],
) -> dict[str, Any]:
    """Each row in a savepoint of the import's transaction: refused rows change nothing,
    the others land together."""
    report = []
    for line, row in rows:
        conn.execute("SAVEPOINT import_row")
        mark = len(events)
        try:
            entry = _import_row(conn, events, kind, row)
        except AcademicError as exc:
            conn.execute("ROLLBACK TO import_row")
            del events[mark:]
            errors = exc.errors or [{"field": "row", "reason": exc.detail}]
            entry = {"action": "refused", "detail": exc.detail, "errors": errors}
        conn.execute("RELEASE import_row")
        report.append({"row": line, "key": row.get(kind.unique, ""), **entry})
    counts = {
        a: sum(1 for r in report if r["action"] == a)
        for a in ("created", "updated", "unchanged", "refused")
    }
    return {"rows": report, **counts}


def _import_row(
    conn: sqlite3.Connection, events: list[Event], kind: Kind, row: dict[str, str]
) -> dict[str, Any]:
    if "__extra__" in row:
        raise Invalid.field("row", "more cells than the header names")
    values: dict[str, Any] = {k: v for k, v in row.items() if v != ""}
    if kind is PROFESOR and "activo" in values:
        values["activo"] = csvio.parse_bool(values["activo"])
    if kind is GRUPO:
        email = values.pop("profesor_email", None)
        values["profesor_id"] = None
        if email:
            profesor = records.find_by_key(conn, PROFESOR, email.strip().lower())
            if profesor is None:
                raise Invalid.field("profesor_email", f"no profesor with email {email!r}")
            values["profesor_id"] = profesor["id"]
    key = str(values.get(kind.unique, "")).strip()
    existing = records.find_by_key(conn, kind, key.lower() if kind is PROFESOR else key.upper())
    if existing is None:
        data = _validated(FULL[kind.name], values, partial=False)
        record = records.create(conn, events, kind, data)
        return {"action": "created", "id": record["id"]}
    data = _validated(PARTIAL[kind.name], values, partial=True)
    if kind is GRUPO:
        data["profesor_id"] = values["profesor_id"]
    before = len(events)
    record = records.update(conn, events, kind, existing["id"], data, None)
    return {"action": "updated" if len(events) > before else "unchanged", "id": record["id"]}


def _validated(model: type[BaseModel], values: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    try:
        return model.model_validate(values).model_dump(exclude_unset=partial)
    except ValidationError as exc:
        raise invalid(field_errors(exc)) from None
