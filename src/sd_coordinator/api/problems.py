"""Every error answer is `{"detail": "<one human sentence>"}` with a fitting 4xx/5xx status."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from sd_common import storage
from sd_coordinator.errors import ServiceError

log = logging.getLogger("sd.coordinator")


class Problem(BaseModel):
    """An error answer: one sentence that says what went wrong and what to do."""

    detail: str


# What each error status of a route that stores work means, for the OpenAPI page (/docs).
MEANINGS = {
    400: "bad input (not an image, an unknown operation, no file): nothing was stored",
    404: "unknown job",
    409: "the job is closed or cancelled: it takes no more files",
    413: "the body is larger than MAX_UPLOAD_MB",
    422: "a field is missing or out of range",
    503: "the task queue (RabbitMQ) is unavailable: nothing was queued, send it again",
    507: "the coordinator's disk is full: free space in its DATA_DIR, then send it again",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=` for the error answers it can give, each `{"detail": str}`."""
    return {code: {"model": Problem, "description": MEANINGS[code]} for code in codes}


# FastAPI's text when a body fails to parse for a reason other than bad JSON syntax.
_FASTAPI_UNPARSABLE = "There was an error parsing the body"


def _where(error: dict[str, Any]) -> str:
    return ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))


def _problem(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "json_invalid":
        # json's messages name the position last ("Unterminated string starting at").
        reason = str((error.get("ctx") or {}).get("error", "malformed")).removesuffix(" at")
        position = error.get("loc", ("body", "?"))[-1]
        return f"request body is not valid JSON: {reason} at character {position}"
    where = _where(error)
    message = str(error.get("msg"))
    if "Expected UploadFile" in message:
        return f"{where.split('.')[0]}: must be a file part (multipart with a filename)"
    if tuple(error.get("loc", ())) == ("body",):
        if kind == "missing":
            return "request body is missing: send a JSON object"
        if kind in ("model_attributes_type", "dict_type"):
            return "request body must be a JSON object, sent as Content-Type: application/json"
        return f"request body: {message}"
    return f"{where}: {message}" if where else message


def validation_message(exc: RequestValidationError) -> str:
    """One line naming each invalid field and why."""
    return "; ".join(_problem(e) for e in exc.errors()) or "invalid request"


def _unparsable_body(cause: BaseException | None) -> str:
    if isinstance(cause, RecursionError):
        return "request body is nested too deeply to parse"
    if isinstance(cause, UnicodeDecodeError):
        return "request body is not valid UTF-8 JSON"
    return "request body could not be parsed; send JSON with Content-Type: application/json"


def install(app: FastAPI) -> None:
    """Map service errors, validation errors and HTTP errors to `{"detail": str}` answers."""

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    disk_full_said = storage.Every(storage.DISK_FULL_SAY_S)

    @app.exception_handler(OSError)
    @app.exception_handler(sqlite3.OperationalError)
    async def disk_full(request: Request, exc: Exception) -> JSONResponse:
        if not storage.is_disk_full(exc):
            raise exc  # anything else is the 500 it was
        if disk_full_said.due():  # every request fails alike until the disk has room
            data_dir = request.app.state.services.settings.data_dir
            held = disk_full_said.take_held()
            log.error(
                "%s %s answered 507: the disk of DATA_DIR %s is full (%s)%s; free space there",
                request.method,
                request.url.path,
                data_dir,
                exc,
                f"; {held} more request(s) answered 507 since the last such line" if held else "",
            )
        return JSONResponse(
            {
                "detail": "the coordinator's disk is full: free space in its DATA_DIR, then "
                "send this again"
            },
            status_code=507,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        detail = exc.detail
        if exc.status_code == 400 and detail == _FASTAPI_UNPARSABLE:
            detail = _unparsable_body(exc.__cause__)
        elif exc.status_code == 404 and detail == "Not Found":
            detail = f"not found: {request.url.path}"
        return JSONResponse(
            {"detail": str(detail)}, status_code=exc.status_code, headers=exc.headers
        )
