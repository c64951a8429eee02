"""What the academic routers share: their route class (token gate, errors with their fields),
sending a command to the service, and the ETag / If-Match / Idempotency-Key headers."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from sd_academic.errors import AcademicError, Invalid, PreconditionRequired
from sd_academic.runtime import AcademicRuntime
from sd_coordinator.api.deps import Handler, require_user, services_of
from sd_coordinator.api.problems import validation_message

ETAG = re.compile(r'^(?:W/)?"?(\d{1,18})"?$')


class AcademicRoute(APIRoute):
    """Like UserRoute (API_TOKEN checked before anything else), and errors also list each bad
    field: `{"detail", "errors": [{"field", "reason"}]}`, so a form shows it at the field."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            require_user(request)
            try:
                return await handler(request)
            except AcademicError as exc:
                return JSONResponse(
                    {"detail": exc.detail, "errors": exc.errors}, status_code=exc.status_code
                )
            except RequestValidationError as exc:
                errors = [
                    {
                        "field": ".".join(str(p) for p in e.get("loc", ())[1:]) or "body",
                        "reason": "unknown field"
                        if e.get("type") == "extra_forbidden"
                        else str(e.get("msg", "invalid")).removeprefix("Value error, "),
                    }
                    for e in exc.errors()
                ]
                detail = validation_message(exc).replace("Value error, ", "")
                return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

        return handle


async def get_academic(request: Request) -> AcademicRuntime:
    """The coordinator's academic runtime."""
    runtime = services_of(request).academic
    if runtime is None:
        raise RuntimeError("the academic runtime is not configured")
    return runtime


AcademicDep = Annotated[AcademicRuntime, Depends(get_academic)]
IdempotencyKey = Annotated[
    str | None,
    Header(max_length=200, description="repeat a write with the same key to apply it once"),
]
IfMatch = Annotated[
    str | None, Header(max_length=40, description='the ETag read with the record, e.g. "3"')
]


async def call(
    academic: AcademicRuntime, command: str, args: dict[str, Any], request_id: str | None = None
) -> Any:
    """Send a command to the academic service and return its result."""
    return await academic.client.call(command, args, request_id)


def version_of(if_match: str | None, *, required: bool = False) -> int | None:
    """The version an If-Match header names (None for absent or `*`)."""
    if if_match is None or if_match.strip() == "*":
        if required:
            raise PreconditionRequired(
                'send If-Match with the ETag you read (e.g. If-Match: "3"), so that a change '
                "someone made meanwhile is not overwritten; or use PATCH for some fields"
            )
        return None
    match = ETAG.match(if_match.strip())
    if match is None:
        raise Invalid.field("If-Match", 'must be the ETag of the record, e.g. "3"')
    return int(match.group(1))


def with_etag(record: dict[str, Any], response: Response) -> dict[str, Any]:
    """Set the record's ETag (its version) on the response."""
    response.headers["ETag"] = f'"{record["version"]}"'
    return record
