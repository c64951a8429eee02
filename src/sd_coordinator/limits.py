"""Request body limits enforced before a body is read whole (pure ASGI middleware)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """413, raised while streaming; FastAPI lets HTTPException through its body parsing."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large: the limit is {limit / 1048576:.1f} MB")


class BodyLimit:
    """Answer 413 for bodies over the limit of their path: at once from Content-Length, or as
    soon as a streamed body crosses it."""

    def __init__(
        self,
        app: ASGIApp,
        limits: dict[str, int],
        default: int,
        patterns: Sequence[tuple[re.Pattern[str], int]] = (),
    ) -> None:
        self.app = app
        self.limits = limits
        self.default = default
        self.patterns = patterns

    def _limit(self, path: str) -> int:
        if path in self.limits:
            return self.limits[path]
        return next((n for p, n in self.patterns if p.fullmatch(path)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._reject(send, limit)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)

    @staticmethod
    async def _reject(send: Send, limit: int) -> None:
        body = orjson.dumps({"detail": BodyTooLarge(limit).detail})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
