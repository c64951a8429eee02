"""User API: grupos (academic records), sent to the academic service as commands."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse

from sd_academic.models import Grupo, GrupoIn, GrupoPatch, Page
from sd_coordinator.api.academic_deps import (
    AcademicDep,
    AcademicRoute,
    IdempotencyKey,
    IfMatch,
    call,
    version_of,
    with_etag,
)

router = APIRouter(route_class=AcademicRoute, tags=["académico: grupos"])

GrupoPath = Annotated[int, Path(ge=1, le=2**62)]
CSV_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {
                    "type": "string",
                    "example": "clave,materia,periodo,cupo,horario,profesor_email\n"
                    "ISC-3A,Bases de datos,2025-1,30,Lun 10:00-12:00,ana.garcia@escuela.edu.mx\n",
                }
            }
        },
    }
}


@router.get("/grupos", response_model=Page)
async def list_grupos(
    academic: AcademicDep,
    q: Annotated[str, Query(max_length=100, description="part of the key or subject")] = "",
    profesor_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    periodo: Annotated[str | None, Query(max_length=20, description="term, e.g. 2025-1")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Any:
    """Grupos by key, a page at a time; filter by profesor or term, `q` searches key and subject."""
    args = {
        "q": q,
        "profesor_id": profesor_id,
        "periodo": periodo,
        "page": page,
        "per_page": per_page,
    }
    return await call(academic, "grupo.list", args)


@router.post("/grupos", status_code=201, response_model=Grupo)
async def create_grupo(
    body: GrupoIn,
    academic: AcademicDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Create a grupo; 409 if the key is in use, 422 if the profesor does not exist."""
    record = await call(academic, "grupo.create", {"data": body.model_dump()}, idempotency_key)
    response.headers["Location"] = f"/grupos/{record['id']}"
    return with_etag(record, response)


@router.get(
    "/grupos/export",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_grupos(academic: AcademicDep) -> PlainTextResponse:
    """Every grupo as CSV; the profesor is named by email (the columns the import reads)."""
    text = await call(academic, "grupo.export", {})
    return PlainTextResponse(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="grupos.csv"'},
    )


@router.post("/grupos/import", openapi_extra=CSV_BODY)
async def import_grupos(
    request: Request, academic: AcademicDep, idempotency_key: IdempotencyKey = None
) -> Any:
    """Create or update grupos from CSV (matched by key); a report of every row."""
    text = (await request.body()).decode("utf-8", errors="replace")
    return await call(academic, "grupo.import", {"csv": text}, idempotency_key)


@router.get("/grupos/{grupo_id}", response_model=Grupo)
async def get_grupo(grupo_id: GrupoPath, academic: AcademicDep, response: Response) -> Any:
    """One grupo; the ETag header is its version, for If-Match."""
    return with_etag(await call(academic, "grupo.get", {"id": grupo_id}), response)


@router.put("/grupos/{grupo_id}", response_model=Grupo)
async def replace_grupo(
    grupo_id: GrupoPath,
    body: GrupoIn,
    academic: AcademicDep,
    response: Response,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Replace every field; If-Match is required (412 if the grupo changed meanwhile)."""
    args = {
        "id": grupo_id,
        "data": body.model_dump(),
        "if_version": version_of(if_match, required=True),
    }
    return with_etag(await call(academic, "grupo.replace", args, idempotency_key), response)


@router.patch("/grupos/{grupo_id}", response_model=Grupo)
async def patch_grupo(
    grupo_id: GrupoPath,
    body: Annotated[GrupoPatch, Body()],
    academic: AcademicDep,
    response: Response,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Change only the fields sent (`profesor_id: null` unassigns); with If-Match, 412 if the
    grupo changed meanwhile."""
    args = {
        "id": grupo_id,
        "data": body.model_dump(exclude_unset=True),
        "if_version": version_of(if_match),
    }
    return with_etag(await call(academic, "grupo.patch", args, idempotency_key), response)


@router.delete("/grupos/{grupo_id}", status_code=204, response_class=Response)
async def delete_grupo(
    grupo_id: GrupoPath,
    academic: AcademicDep,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Delete a grupo."""
    args = {"id": grupo_id, "if_version": version_of(if_match)}
    await call(academic, "grupo.delete", args, idempotency_key)
    return Response(status_code=204)
