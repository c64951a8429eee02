"""Bad input to the academic API: each case's status and `detail` exactly as docs/bad-input.md
lists them, with the field named in `errors`, and nothing changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from support.api import asgi_client, make_settings, running_app

ANA = {"nombre": "Ana", "apellidos": "García", "email": "ana@escuela.mx"}
GRUPO = {"clave": "ISC-3A", "materia": "Redes", "periodo": "2025-1", "cupo": 30}
CSV = {"content-type": "text/csv"}

# name: (method, path, request options, status, detail)
BAD: dict[str, tuple[str, str, dict[str, Any], int, str]] = {
    "profesor without email": (
        "POST",
        "/profesores",
        {"json": {"nombre": "A", "apellidos": "B"}},
        422,
        "email: Field required",
    ),
    "email without @": (
        "POST",
        "/profesores",
        {"json": {**ANA, "email": "ana.escuela.mx"}},
        422,
        "email: not an email address (name@domain.tld)",
    ),
    "empty name": (
        "POST",
        "/profesores",
        {"json": {**ANA, "nombre": "  "}},
        422,
        "nombre: String should have at least 1 character",
    ),
    "name with a line break": (
        "POST",
        "/profesores",
        {"json": {**ANA, "nombre": "A\nB"}},
        422,
        "nombre: must not contain control characters (tabs, line breaks)",
    ),
    "name of 101 characters": (
        "POST",
        "/profesores",
        {"json": {**ANA, "nombre": "x" * 101}},
        422,
        "nombre: String should have at most 100 characters",
    ),
    "activo not a boolean": (
        "POST",
        "/profesores",
        {"json": {**ANA, "activo": "quizá"}},
        422,
        "activo: Input should be a valid boolean, unable to interpret input",
    ),
    "unknown field": (
        "POST",
        "/profesores",
        {"json": {**ANA, "edad": 40}},
        422,
        "edad: Extra inputs are not permitted",
    ),
    "body is a list": (
        "POST",
        "/profesores",
        {"json": [ANA]},
        422,
        "request body must be a JSON object, sent as Content-Type: application/json",
    ),
    "email already in use (any case)": (
        "POST",
        "/profesores",
        {"json": {**ANA, "email": "ANA@escuela.mx"}},
        409,
        "email: a profesor with email 'ana@escuela.mx' already exists",
    ),
    "key with a space": (
        "POST",
        "/grupos",
        {"json": {**GRUPO, "clave": "ISC 3A"}},
        422,
        "clave: letters, digits, '-', '.' or '_', starting with a letter or digit",
    ),
    "capacity 0": (
        "POST",
        "/grupos",
        {"json": {**GRUPO, "clave": "X", "cupo": 0}},
        422,
        "cupo: Input should be greater than or equal to 1",
    ),
    "capacity 501": (
        "POST",
        "/grupos",
        {"json": {**GRUPO, "clave": "X", "cupo": 501}},
        422,
        "cupo: Input should be less than or equal to 500",
    ),
    "capacity not a number": (
        "POST",
        "/grupos",
        {"json": {**GRUPO, "clave": "X", "cupo": "treinta"}},
        422,
        "cupo: Input should be a valid integer, unable to parse string as an integer",
    ),
    "unknown profesor": (
        "POST",
        "/grupos",
        {"json": {**GRUPO, "clave": "X", "profesor_id": 999}},
        422,
        "profesor_id: no profesor with id 999",
    ),
    "key already in use (any case)": (
        "POST",
        "/grupos",
        {"json": {**GRUPO, "clave": "isc-3a"}},
        409,
        "clave: a grupo with clave 'ISC-3A' already exists",
    ),
    "PUT without If-Match": (
        "PUT",
        "/profesores/1",
        {"json": ANA},
        428,
        'send If-Match with the ETag you read (e.g. If-Match: "3"), so that a change '
        "someone made meanwhile is not overwritten; or use PATCH for some fields",
    ),
    "PUT with a stale If-Match": (
        "PUT",
        "/profesores/1",
        {"json": ANA, "headers": {"If-Match": '"7"'}},
        412,
        "profesor 1 changed since you read it (your version 7, now 1): reload it and "
        "apply your change again",
    ),
    "If-Match that is not an ETag": (
        "PATCH",
        "/profesores/1",
        {"json": {}, "headers": {"If-Match": "ayer"}},
        422,
        'If-Match: must be the ETag of the record, e.g. "3"',
    ),
    "PATCH a required field to null": (
        "PATCH",
        "/profesores/1",
        {"json": {"nombre": None}},
        422,
        "nombre: may not be null",
    ),
    "delete a profesor who teaches": (
        "DELETE",
        "/profesores/1",
        {},
        409,
        "profesor 1 still teaches 1 grupo(s) (ISC-3A): assign them to someone else first, "
        "or delete with unassign=true",
    ),
    "id 0": (
        "GET",
        "/profesores/0",
        {},
        422,
        "profesor_id: Input should be greater than or equal to 1",
    ),
    "id not a number": (
        "GET",
        "/grupos/abc",
        {},
        422,
        "grupo_id: Input should be a valid integer, unable to parse string as an integer",
    ),
    "unknown id": (
        "GET",
        "/grupos/999",
        {},
        404,
        "no grupo with id 999",
    ),
    "per_page 101": (
        "GET",
        "/profesores?per_page=101",
        {},
        422,
        "per_page: Input should be less than or equal to 100",
    ),
    "page 0": (
        "GET",
        "/grupos?page=0",
        {},
        422,
        "page: Input should be greater than or equal to 1",
    ),
    "search of 101 characters": (
        "GET",
        "/profesores?q=" + "a" * 101,
        {},
        422,
        "q: String should have at most 100 characters",
    ),
    "CSV with an unknown column": (
        "POST",
        "/profesores/import",
        {"content": b"nombre,correo\nA,a@b.mx\n", "headers": CSV},
        422,
        "file: unknown column(s) correo; expected nombre, apellidos, email, departamento, activo",
    ),
    "CSV without the key column": (
        "POST",
        "/grupos/import",
        {"content": b"materia,cupo\nRedes,3\n", "headers": CSV},
        422,
        "file: the header lacks the column(s) clave",
    ),
    "empty CSV": (
        "POST",
        "/grupos/import",
        {"content": b"", "headers": CSV},
        422,
        "file: the CSV is empty; its first line must name the columns",
    ),
}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """An embedded coordinator with one profesor (id 1) teaching one grupo (ISC-3A)."""
    settings = make_settings(tmp_path_factory.mktemp("academic-bad"))
    async with running_app(settings) as app, asgi_client(app) as c:
        p = (await c.post("/profesores", json=ANA)).json()
        assert (await c.post("/grupos", json={**GRUPO, "profesor_id": p["id"]})).status_code == 201
        yield c


async def snapshot(client: httpx.AsyncClient) -> tuple[Any, Any]:
    return (await client.get("/profesores")).json(), (await client.get("/grupos")).json()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", list(BAD))
async def test_bad_academic_input_is_refused_with_the_documented_answer(
    client: httpx.AsyncClient, case: str
) -> None:
    method, path, options, status, detail = BAD[case]
    before = await snapshot(client)
    response = await client.request(method, path, **options)
    assert (response.status_code, response.json()["detail"]) == (status, detail)
    assert await snapshot(client) == before


def test_every_case_is_in_docs_bad_input() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "bad-input.md").read_text()
    missing = [
        name
        for name, (*_, status, detail) in BAD.items()
        if f"| {name} | {status} | `{detail}` |" not in doc
    ]
    assert missing == []
