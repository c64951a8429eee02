"""Memory per request is bounded: POST /results spools its result images instead of reading
them whole, each result frame has a size cap, and live event streams are limited (503 past it)."""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from sd_common import result_frames
from sd_common.result_frames import ResultHeader
from support.api import asgi_client, detail_of, make_settings, running_app

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MB = 1024 * 1024


async def body_of(size: int) -> AsyncIterator[bytes]:
    """A POST /results body of one PNG-looking result image of `size` bytes, made 1 MB at a
    time (the test holds little of it)."""
    raw = ResultHeader(task_id="ab" * 16, worker="w1", size=size).model_dump_json().encode()
    yield len(raw).to_bytes(4, "big") + raw
    yield PNG_SIGNATURE
    sent = len(PNG_SIGNATURE)
    while sent < size:
        chunk = os.urandom(min(MB, size - sent))
        sent += len(chunk)
        yield chunk


async def test_a_large_result_image_is_spooled_not_read_whole(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as app, asgi_client(app) as client:
        tracemalloc.start()
        try:
            response = await client.post("/results", content=body_of(64 * MB))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # Read to the end, then: no such task.
        assert response.status_code == 200, response.text
        assert response.json()["answers"][0]["status"] == 404
        assert peak < 24 * MB, f"the request held {peak / MB:.0f} MB"
        assert not list((tmp_path / "results").iterdir())  # the spooled body is gone too


async def test_a_frame_announcing_more_than_a_result_can_be_is_refused_at_once(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, max_image_pixels=10_000)
    limit = result_frames.max_result_bytes(10_000)
    header = ResultHeader(task_id="ab" * 16, worker="w", size=limit + 1)
    raw = header.model_dump_json().encode()
    # Only the header is sent: a reader that waited for the frame's bytes would hang here.
    body = len(raw).to_bytes(4, "big") + raw + PNG_SIGNATURE
    async with running_app(settings) as app, asgi_client(app) as client:
        response = await client.post("/results", content=body)
        assert response.status_code == 422, response.text
        assert f"at most {limit}" in detail_of(response)


class OpenStream:
    """GET /events in-process, kept open until `close()`."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.status: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.body = bytearray()
        self.hang_up = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/events",
            "raw_path": b"/events",
            "root_path": "",
            "query_string": b"",
            "server": ("localhost", 80),
            "client": ("127.0.0.1", 50000),
            "headers": [(b"host", b"localhost")],
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self.hang_up.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and not self.status.done():
                self.status.set_result(message["status"])
            elif message["type"] == "http.response.body":
                self.body += message.get("body", b"")

        await self.app(scope, receive, send)

    async def close(self) -> None:
        self.hang_up.set()
        await asyncio.wait_for(self.task, 10)


async def test_live_event_streams_are_bounded_with_a_clear_503(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path, max_event_streams=2)) as app:
        first, second = OpenStream(app), OpenStream(app)
        assert [await first.status, await second.status] == [200, 200]
        third = OpenStream(app)
        assert await third.status == 503
        await third.task
        assert b"MAX_EVENT_STREAMS" in third.body

        await first.close()  # a slot comes back when a stream ends
        fourth = OpenStream(app)
        assert await fourth.status == 200
        await asyncio.gather(second.close(), fourth.close())
