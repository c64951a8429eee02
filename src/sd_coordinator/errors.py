"""Service errors, mapped to HTTP in one exception handler (see app.py)."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of errors a client caused or must know about; `status_code` is its HTTP answer."""

    status_code = 400

    def __init__(self, detail: str, status_code: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code


class BadRequest(ServiceError):
    status_code = 400


class Unauthorized(ServiceError):
    status_code = 401


class Forbidden(ServiceError):
    status_code = 403


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class TooLarge(ServiceError):
    status_code = 413


class Unsupported(ServiceError):
    status_code = 415


class Invalid(ServiceError):
    status_code = 422


class Unavailable(ServiceError):
    status_code = 503
