"""User API: profesores (academic records), sent to the academic service as commands."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse

from sd_academic.models import Page, Profesor, ProfesorIn, ProfesorPatch
from sd_coordinator.api.academic_deps import (
    AcademicDep,
    AcademicRoute,
    IdempotencyKey,
    IfMatch,
    call,
    version_of,
    with_etag,
)

router = APIRouter(route_class=AcademicRoute, tags=["académico: profesores"])

ProfesorPath = Annotated[int, Path(ge=1, le=2**62)]
CSV_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {
                    "type": "string",
                    "example": "nombre,apellidos,email,departamento,activo\n"
                    "Ana,García López,ana.garcia@escuela.edu.mx,Sistemas,sí\n",
                }
            }
        },
    }
}


@router.get("/profesores", response_model=Page)
async def list_profesores(
    academic: AcademicDep,
    q: Annotated[str, Query(max_length=100, description="part of the name or email")] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
    activo: bool | None = None,
) -> Any:
    """Profesores by surname, a page at a time; `q` searches names and emails."""
    args = {"q": q, "page": page, "per_page": per_page, "activo": activo}
    return await call(academic, "profesor.list", args)


@router.post("/profesores", status_code=201, response_model=Profesor)
async def create_profesor(
    body: ProfesorIn,
    academic: AcademicDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Create a profesor; 409 if the email is in use."""
    record = await call(academic, "profesor.create", {"data": body.model_dump()}, idempotency_key)
    response.headers["Location"] = f"/profesores/{record['id']}"
    return with_etag(record, response)


@router.get(
    "/profesores/export",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_profesores(academic: AcademicDep) -> PlainTextResponse:
    """Every profesor as CSV (the columns the import reads)."""
    text = await call(academic, "profesor.export", {})
    return PlainTextResponse(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="profesores.csv"'},
    )


@router.post("/profesores/import", openapi_extra=CSV_BODY)
async def import_profesores(
    request: Request, academic: AcademicDep, idempotency_key: IdempotencyKey = None
) -> Any:
    """Create or update profesores from CSV (matched by email); a report of every row."""
    text = (await request.body()).decode("utf-8", errors="replace")
    return await call(academic, "profesor.import", {"csv": text}, idempotency_key)


@router.get("/profesores/{profesor_id}", response_model=Profesor)
async def get_profesor(profesor_id: ProfesorPath, academic: AcademicDep, response: Response) -> Any:
    """One profesor; the ETag header is its version, for If-Match."""
    return with_etag(await call(academic, "profesor.get", {"id": profesor_id}), response)


@router.put("/profesores/{profesor_id}", response_model=Profesor)
async def replace_profesor(
    profesor_id: ProfesorPath,
    body: ProfesorIn,
    academic: AcademicDep,
    response: Response,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Replace every field; If-Match is required (412 if the profesor changed meanwhile)."""
    args = {
        "id": profesor_id,
        "data": body.model_dump(),
        "if_version": version_of(if_match, required=True),
    }
    return with_etag(await call(academic, "profesor.replace", args, idempotency_key), response)


@router.patch("/profesores/{profesor_id}", response_model=Profesor)
async def patch_profesor(
    profesor_id: ProfesorPath,
    body: Annotated[ProfesorPatch, Body()],
    academic: AcademicDep,
    response: Response,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Change only the fields sent; with If-Match, 412 if the profesor changed meanwhile."""
    args = {
        "id": profesor_id,
        "data": body.model_dump(exclude_unset=True),
        "if_version": version_of(if_match),
    }
    return with_etag(await call(academic, "profesor.patch", args, idempotency_key), response)


@router.delete("/profesores/{profesor_id}", status_code=204, response_class=Response)
async def delete_profesor(
    profesor_id: ProfesorPath,
    academic: AcademicDep,
    unassign: Annotated[bool, Query(description="leave their grupos without profesor")] = False,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Delete a profesor; 409 while they teach grupos, unless `unassign=true`."""
    args = {"id": profesor_id, "unassign": unassign, "if_version": version_of(if_match)}
    await call(academic, "profesor.delete", args, idempotency_key)
    return Response(status_code=204)


@router.get("/profesores/{profesor_id}/grupos", response_model=Page)
async def grupos_of_profesor(
    profesor_id: ProfesorPath,
    academic: AcademicDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
    periodo: Annotated[str | None, Query(max_length=20)] = None,
) -> Any:
    """The grupos a profesor teaches."""
    args = {"profesor_id": profesor_id, "page": page, "per_page": per_page, "periodo": periodo}
    return await call(academic, "profesor.grupos", args)
