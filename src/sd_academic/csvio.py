"""CSV in and out: the columns of each entity, rows read into dicts, records written out."""

from __future__ import annotations

import csv
import io
from typing import Any

from sd_academic.errors import Invalid

COLUMNS = {
    "profesor": ("nombre", "apellidos", "email", "departamento", "activo"),
    "grupo": ("clave", "materia", "periodo", "cupo", "horario", "profesor_email"),
}
REQUIRED = {"profesor": ("email",), "grupo": ("clave",)}
MAX_ROWS = 5000
TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "si", "sí", "s", "x", "verdadero"})
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "falso"})


def parse_bool(value: str) -> bool | str:
    """Spanish or English yes/no as a bool; anything else as given (validation names it)."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return value


def read_rows(kind: str, text: str) -> list[tuple[int, dict[str, str]]]:
    """The rows of a CSV with a header line naming some of COLUMNS[kind] (any order; `,` or
    `;` separated), each with the line it ends on (a quoted cell may span lines). Invalid if
    the header is unusable or there are too many rows."""
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise Invalid.field("file", "the CSV is empty; its first line must name the columns")
    first = text.splitlines()[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip().lower() for h in reader.fieldnames or []]
    known = COLUMNS[kind]
    unknown = [h for h in header if h not in known]
    if unknown:
        raise Invalid.field(
            "file", f"unknown column(s) {', '.join(unknown)}; expected {', '.join(known)}"
        )
    missing = [c for c in REQUIRED[kind] if c not in header]
    if missing:
        raise Invalid.field("file", f"the header lacks the column(s) {', '.join(missing)}")
    reader.fieldnames = header
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for row in reader:
            if len(rows) >= MAX_ROWS:
                raise Invalid.field("file", f"more than {MAX_ROWS} rows; split the file")
            extra = row.pop(None, None)
            cells = {k: (v or "").strip() for k, v in row.items()}
            if extra:
                cells["__extra__"] = "more cells than columns"
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise Invalid.field("file", f"not readable as CSV: {exc}") from None
    return rows


def write_rows(kind: str, records: list[dict[str, Any]], emails: dict[int, str]) -> str:
    """Records as CSV text, with the columns `read_rows` accepts (grupos name their profesor
    by email, from `emails` by profesor id)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    columns = COLUMNS[kind]
    writer.writerow(columns)
    for record in records:
        if kind == "grupo":
            profesor_id = record.get("profesor_id")
            record = {
                **record,
                "profesor_email": emails.get(profesor_id, "") if profesor_id else "",
            }
        if kind == "profesor":
            record = {**record, "activo": "sí" if record["activo"] else "no"}
        writer.writerow([_safe_cell(record.get(c)) for c in columns])
    return out.getvalue()


def _safe_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A cell starting with = + - @ runs as a formula in spreadsheets (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
