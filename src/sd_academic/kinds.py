"""The two entities (profesor, grupo) as the SQL sees them, and small helpers over their rows."""

from __future__ import annotations

import sqlite3
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


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
    "profesor",
    "profesores",
    ("nombre", "apellidos", "email", "departamento", "activo"),
    "email",
    ("p.nombre", "p.apellidos", "p.nombre || ' ' || p.apellidos", "p.email"),
    "p.*, (SELECT COUNT(*) FROM grupos g WHERE g.profesor_id = p.id) AS grupos",
    "profesores p",
    "p.apellidos COLLATE NOCASE, p.nombre COLLATE NOCASE, p.id",
)
GRUPO = Kind(
    "grupo",
    "grupos",
    ("clave", "materia", "periodo", "cupo", "horario", "profesor_id"),
    "clave",
    ("g.clave", "g.materia"),
    "g.*, p.nombre || ' ' || p.apellidos AS profesor",
    "grupos g LEFT JOIN profesores p ON p.id = g.profesor_id",
    "g.clave COLLATE NOCASE, g.id",
)
KINDS = {k.name: k for k in (PROFESOR, GRUPO)}
ALIAS = {"profesor": "p", "grupo": "g"}


def now_iso() -> str:
    """UTC now, ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def row_dict(kind: Kind, row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    if kind is PROFESOR:
        data["activo"] = bool(data["activo"])
    return data


def fold(text: object) -> str:
    """`text` without accents, case-folded: a search for "garcia" finds "García"."""
    decomposed = unicodedata.normalize("NFKD", str(text or ""))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def like_pattern(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass
class Event:
    """A change to publish: `routing_key` such as `profesor.created`, and its body."""

    routing_key: str
    body: dict[str, Any]
