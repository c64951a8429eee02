"""Errors of the academic service; each carries its HTTP status and travels in RPC replies."""

from __future__ import annotations

from typing import Any


class AcademicError(Exception):
    """A command the service refused; `errors` names each bad field and why (for 422)."""

    status_code = 400

    def __init__(
        self, detail: str, *, errors: list[dict[str, str]] | None = None, status: int | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        if status is not None:
            self.status_code = status

    def to_wire(self) -> dict[str, Any]:
        """The error as it travels in a reply."""
        return {"status": self.status_code, "detail": self.detail, "errors": self.errors}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> AcademicError:
        """The error a reply carried, as the subclass of its status."""
        status = int(data.get("status", 500))
        kind = next((k for k in _KINDS if k.status_code == status), AcademicError)
        return kind(
            str(data.get("detail", "")), errors=list(data.get("errors") or []), status=status
        )


class Invalid(AcademicError):
    status_code = 422

    @classmethod
    def field(cls, field: str, reason: str) -> Invalid:
        """One bad field."""
        return cls(f"{field}: {reason}", errors=[{"field": field, "reason": reason}])


class NotFound(AcademicError):
    status_code = 404


class Conflict(AcademicError):
    """A duplicate key, or a delete that would leave grupos without their profesor."""

    status_code = 409


class Stale(AcademicError):
    """The record changed since the client read it (If-Match did not match)."""

    status_code = 412


class PreconditionRequired(AcademicError):
    status_code = 428


class Unavailable(AcademicError):
    """No academic service reachable (broker down, or nobody consumes the request queue)."""

    status_code = 503


class TimedOut(AcademicError):
    """The service did not answer in time; the change was applied entirely or not at all."""

    status_code = 504


_KINDS: tuple[type[AcademicError], ...] = (
    Invalid,
    NotFound,
    Conflict,
    Stale,
    PreconditionRequired,
    Unavailable,
    TimedOut,
)
