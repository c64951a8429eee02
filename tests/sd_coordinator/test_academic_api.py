"""The academic REST API (profesores, grupos) on an embedded coordinator: validation with the
field, duplicates, stale writes, deletes, paging and search, CSV, the token, the event stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI

from support.api import asgi_client, make_settings, running_app
from support.cluster import free_port


@pytest_asyncio.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    async with running_app(make_settings(tmp_path)) as app:
        yield app


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app) as c:
        yield c


def profesor(n: int = 1, **over: Any) -> dict[str, Any]:
    return {
        "nombre": f"Ana{n}",
        "apellidos": f"García {n}",
        "email": f"ana{n}@escuela.edu.mx",
        "departamento": "Sistemas",
        **over,
    }


def grupo(clave: str = "ISC-3A", **over: Any) -> dict[str, Any]:
    return {
        "clave": clave,
        "materia": "Bases de datos",
        "periodo": "2025-1",
        "cupo": 30,
        "horario": "Lun 10:00-12:00",
        **over,
    }


async def created(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_a_profesor_is_created_read_listed_and_its_etag_is_its_version(
    client: httpx.AsyncClient,
) -> None:
    p = await created(client, "/profesores", profesor(1, email="  Ana1@Escuela.EDU.mx "))
    assert p["email"] == "ana1@escuela.edu.mx" and p["activo"] is True and p["version"] == 1
    read = await client.get(f"/profesores/{p['id']}")
    assert read.status_code == 200 and read.json() == p
    assert read.headers["etag"] == '"1"'
    listed = (await client.get("/profesores")).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == p["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (profesor(email="not-an-email"), "email"),
        (profesor(nombre=""), "nombre"),
        (profesor(nombre="x" * 101), "nombre"),
        (profesor(apellidos="a\nb"), "apellidos"),
        ({k: v for k, v in profesor().items() if k != "email"}, "email"),
        (profesor(activo="maybe"), "activo"),
        (profesor(edad=40), "edad"),
    ],
    ids=["bad email", "empty name", "long name", "line break", "no email", "bad bool", "unknown"],
)
async def test_an_invalid_profesor_answers_422_naming_the_field_and_stores_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/profesores", json=body)
    assert response.status_code == 422
    answer = response.json()
    assert field in answer["detail"]
    assert [e["field"] for e in answer["errors"]] == [field], answer
    assert answer["errors"][0]["reason"]
    assert (await client.get("/profesores")).json()["total"] == 0


async def test_a_duplicate_email_or_key_answers_409(client: httpx.AsyncClient) -> None:
    await created(client, "/profesores", profesor(1))
    again = await client.post("/profesores", json=profesor(2, email="ANA1@escuela.edu.mx"))
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "email"
    await created(client, "/grupos", grupo("ISC-3A"))
    dup = await client.post("/grupos", json=grupo("isc-3a"))
    assert dup.status_code == 409 and "clave" in dup.json()["detail"]
    assert (await client.get("/grupos")).json()["total"] == 1


async def test_a_grupo_with_an_unknown_profesor_answers_422_on_profesor_id(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/grupos", json=grupo(profesor_id=999))
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "profesor_id", "reason": "no profesor with id 999"}
    ]


async def test_a_stale_put_answers_412_and_leaves_the_newer_change(
    client: httpx.AsyncClient,
) -> None:
    p = await created(client, "/profesores", profesor(1))
    first = await client.put(
        f"/profesores/{p['id']}",
        json=profesor(1, departamento="Física"),
        headers={"If-Match": '"1"'},
    )
    assert first.status_code == 200 and first.json()["version"] == 2
    assert first.headers["etag"] == '"2"'
    stale = await client.put(
        f"/profesores/{p['id']}",
        json=profesor(1, departamento="Química"),
        headers={"If-Match": '"1"'},
    )
    assert stale.status_code == 412, stale.text
    now = (await client.get(f"/profesores/{p['id']}")).json()
    assert now["departamento"] == "Física" and now["version"] == 2


async def test_a_put_without_if_match_answers_428(client: httpx.AsyncClient) -> None:
    p = await created(client, "/profesores", profesor(1))
    response = await client.put(f"/profesores/{p['id']}", json=profesor(1, nombre="Otra"))
    assert response.status_code == 428
    assert (await client.get(f"/profesores/{p['id']}")).json()["nombre"] == "Ana1"


async def test_a_patch_changes_only_the_fields_sent(client: httpx.AsyncClient) -> None:
    p = await created(client, "/profesores", profesor(1))
    response = await client.patch(f"/profesores/{p['id']}", json={"activo": False})
    assert response.status_code == 200
    assert response.json() == {
        **p,
        "activo": False,
        "version": 2,
        "updated_at": response.json()["updated_at"],
    }
    stale = await client.patch(
        f"/profesores/{p['id']}", json={"nombre": "X"}, headers={"If-Match": '"1"'}
    )
    assert stale.status_code == 412
    null = await client.patch(f"/profesores/{p['id']}", json={"nombre": None})
    assert null.status_code == 422 and null.json()["errors"][0]["field"] == "nombre"


async def test_concurrent_edits_of_one_version_let_exactly_one_win(
    client: httpx.AsyncClient,
) -> None:
    g = await created(client, "/grupos", grupo())
    answers = await asyncio.gather(
        *(
            client.patch(f"/grupos/{g['id']}", json={"cupo": 10 + i}, headers={"If-Match": '"1"'})
            for i in range(8)
        )
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [412] * 7
    winner = next(a.json() for a in answers if a.status_code == 200)
    assert (await client.get(f"/grupos/{g['id']}")).json()["cupo"] == winner["cupo"]


async def test_deleting_a_profesor_who_teaches_answers_409_unless_asked_to_unassign(
    client: httpx.AsyncClient,
) -> None:
    p = await created(client, "/profesores", profesor(1))
    g = await created(client, "/grupos", grupo(profesor_id=p["id"]))
    assert g["profesor"] == "Ana1 García 1"
    refused = await client.delete(f"/profesores/{p['id']}")
    assert refused.status_code == 409 and "ISC-3A" in refused.json()["detail"]
    assert (await client.get(f"/profesores/{p['id']}")).status_code == 200
    gone = await client.delete(f"/profesores/{p['id']}", params={"unassign": "true"})
    assert gone.status_code == 204
    assert (await client.get(f"/profesores/{p['id']}")).status_code == 404
    after = (await client.get(f"/grupos/{g['id']}")).json()
    assert after["profesor_id"] is None and after["version"] == 2


async def test_lists_page_search_and_filter(client: httpx.AsyncClient) -> None:
    ids = [(await created(client, "/profesores", profesor(n)))["id"] for n in range(25)]
    await created(
        client, "/profesores", profesor(99, nombre="Zoe", apellidos="Zapata", email="zoe@otra.mx")
    )
    first = (await client.get("/profesores", params={"per_page": 10})).json()
    second = (await client.get("/profesores", params={"per_page": 10, "page": 3})).json()
    assert first["total"] == 26 and len(first["items"]) == 10 and len(second["items"]) == 6
    found = (await client.get("/profesores", params={"q": "zapata"})).json()
    assert [p["email"] for p in found["items"]] == ["zoe@otra.mx"]
    accents = (await client.get("/profesores", params={"q": "GARCIA 1"})).json()
    assert {p["email"] for p in accents["items"]} >= {"ana1@escuela.edu.mx"}
    assert all("García 1" in p["apellidos"] for p in accents["items"])
    by_mail = (await client.get("/profesores", params={"q": "otra.mx"})).json()
    assert by_mail["total"] == 1
    no_wildcards = (await client.get("/profesores", params={"q": "%"})).json()
    assert no_wildcards["total"] == 0
    await created(client, "/grupos", grupo("A-1", profesor_id=ids[0]))
    await created(client, "/grupos", grupo("A-2", profesor_id=ids[0], periodo="2025-2"))
    await created(client, "/grupos", grupo("B-1", profesor_id=ids[1]))
    mine = (await client.get("/grupos", params={"profesor_id": ids[0]})).json()
    assert [g["clave"] for g in mine["items"]] == ["A-1", "A-2"]
    term = (await client.get("/grupos", params={"periodo": "2025-2"})).json()
    assert [g["clave"] for g in term["items"]] == ["A-2"]
    taught = (await client.get(f"/profesores/{ids[0]}/grupos")).json()
    assert taught["total"] == 2
    assert (await client.get("/profesores/999999/grupos")).status_code == 404
    assert (await client.get("/profesores", params={"per_page": 101})).status_code == 422


async def test_csv_import_reports_each_row_and_export_reads_back(
    client: httpx.AsyncClient,
) -> None:
    await created(client, "/profesores", profesor(1))
    text = (
        "nombre,apellidos,email,departamento,activo\n"
        "Ana1,García 1,ana1@escuela.edu.mx,Sistemas,sí\n"  # unchanged
        "Luis,Pérez,luis@escuela.edu.mx,Física,no\n"  # created
        "Ana1,García 1,ana1@escuela.edu.mx,Química,sí\n"  # updated
        'Ana2,"García\nDos",ana2@escuela.edu.mx,Sistemas,sí\n'  # refused: a line break
        "Mal,Correo,no-es-correo,,\n"  # refused
    )
    response = await client.post(
        "/profesores/import", content=text.encode(), headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert [(r["row"], r["action"]) for r in report["rows"]] == [
        (2, "unchanged"),
        (3, "created"),
        (4, "updated"),
        (6, "refused"),
        (7, "refused"),
    ]
    assert report["rows"][3]["errors"][0]["field"] == "apellidos"
    assert report["rows"][4]["errors"][0]["field"] == "email"
    assert (report["created"], report["updated"], report["refused"]) == (1, 1, 2)
    grupos_csv = (
        "clave;materia;periodo;cupo;profesor_email\n"
        "ISC-1A;Redes;2025-1;25;luis@escuela.edu.mx\n"
        "ISC-1B;Redes;2025-1;0;\n"
        "ISC-1C;Redes;2025-1;20;nadie@escuela.edu.mx\n"
    )
    g = (await client.post("/grupos/import", content=grupos_csv.encode())).json()
    assert [r["action"] for r in g["rows"]] == ["created", "refused", "refused"]
    assert [r["errors"][0]["field"] for r in g["rows"][1:]] == ["cupo", "profesor_email"]
    export = await client.get("/grupos/export")
    assert export.headers["content-type"].startswith("text/csv")
    assert export.text.splitlines() == [
        "clave,materia,periodo,cupo,horario,profesor_email",
        "ISC-1A,Redes,2025-1,25,,luis@escuela.edu.mx",
    ]
    profesores = (await client.get("/profesores/export")).text.splitlines()
    assert profesores[1:] == [
        "Ana1,García 1,ana1@escuela.edu.mx,Química,sí",
        "Luis,Pérez,luis@escuela.edu.mx,Física,no",
    ]


async def test_a_csv_with_an_unknown_column_is_refused_whole(client: httpx.AsyncClient) -> None:
    response = await client.post("/profesores/import", content=b"nombre,correo\nA,a@b.mx\n")
    assert response.status_code == 422 and "correo" in response.json()["detail"]
    assert (await client.get("/profesores")).json()["total"] == 0


async def test_a_repeated_idempotency_key_applies_a_write_once(
    client: httpx.AsyncClient,
) -> None:
    key = {"Idempotency-Key": "alta-ana-1"}
    first = await client.post("/profesores", json=profesor(1), headers=key)
    again = await client.post("/profesores", json=profesor(1), headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert (await client.get("/profesores")).json()["total"] == 1


async def test_api_token_protects_the_academic_api(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path, api_token="secret")) as app:
        async with asgi_client(app) as anonymous:
            assert (await anonymous.get("/profesores")).status_code == 401
            assert (await anonymous.post("/grupos", json=grupo())).status_code == 401
        async with asgi_client(app, authorization="Bearer secret") as staff:
            assert (await staff.post("/grupos", json=grupo())).status_code == 201


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """`app` (lifespan already entered) on a real local port: httpx's ASGI transport would
    hold a streamed answer until it ends."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn's Server has no "started" event)
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_changes_stream_to_the_academic_event_stream(app: FastAPI) -> None:
    received: list[dict[str, Any]] = []
    ready = asyncio.Event()

    async def listen(url: str) -> None:
        async with (
            httpx.AsyncClient(base_url=url) as c,
            c.stream("GET", "/academico/events") as response,
        ):
            async for line in response.aiter_lines():
                if line.startswith("event: ready"):
                    ready.set()
                if line.startswith("data: ") and line != "data: {}":
                    received.append(json.loads(line[6:]))
                    if len(received) == 2:
                        return

    async with served(app) as url:
        listener = asyncio.create_task(listen(url))
        await asyncio.wait_for(ready.wait(), 10)
        async with asgi_client(app) as c:
            p = await created(c, "/profesores", profesor(1))
            await c.patch(f"/profesores/{p['id']}", json={"activo": False})
        await asyncio.wait_for(listener, 10)
    assert [(e["type"], e["id"]) for e in received] == [
        ("profesor.created", p["id"]),
        ("profesor.updated", p["id"]),
    ]
    assert received[1]["data"]["activo"] is False


async def test_the_academic_routes_are_in_the_openapi_page(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    expected = [
        "/profesores",
        "/profesores/{profesor_id}",
        "/grupos",
        "/grupos/{grupo_id}",
        "/profesores/import",
        "/grupos/export",
        "/profesores/{profesor_id}/grupos",
    ]
    assert [p for p in expected if p not in paths] == []
    assert set(paths["/grupos/{grupo_id}"]) == {"get", "put", "patch", "delete"}
