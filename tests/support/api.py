"""The coordinator app in-process: httpx over ASGI with the lifespan entered, and what it stored."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
from fastapi import FastAPI
from PIL import Image

from sd_common import result_frames
from sd_common.settings import Settings
from sd_coordinator.app import create_app


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for an in-process app: embedded, no tokens, no .env, unless overridden."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "rabbit_host": None,
        "cluster_token": None,
        "api_token": None,
        "coordinator_bind": None,
        "cors_origins": [],
        "task_modules": [],
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """create_app(settings) with its lifespan entered (services started, stopped on exit)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def asgi_client(app: FastAPI, **headers: str) -> httpx.AsyncClient:
    """An httpx client that calls `app` in-process (request bodies are streamed to it)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://localhost",
        headers=headers,
        timeout=30,
    )


async def raw_get(app: FastAPI, raw_path: str, **headers: str) -> tuple[int, bytes]:
    """GET a path exactly as given (httpx would normalize `../` away before sending it)."""
    path, _, query = raw_path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "server": ("localhost", 80),
        "client": ("127.0.0.1", 50000),
        "headers": [(b"host", b"localhost")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    status = 0
    body = bytearray()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, receive, send)
    return status, bytes(body)


def png_bytes(width: int = 16, height: int = 16, colour: str = "teal") -> bytes:
    """A small valid PNG."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Stored:
    """What the coordinator holds: jobs, files under DATA_DIR, workers, queued messages."""

    jobs: tuple[str, ...]
    blobs: tuple[str, ...]
    results: tuple[str, ...]
    workers: tuple[str, ...]
    pending_tasks: int


def _files(folder: Path) -> tuple[str, ...]:
    if not folder.exists():
        return ()
    return tuple(sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()))


async def stored(client: httpx.AsyncClient, data_dir: Path) -> Stored:
    """A snapshot of everything a request could have stored or enqueued."""
    jobs = await client.get("/jobs", params={"limit": 1000})
    workers = await client.get("/workers")
    queue = await client.get("/queue_size")
    assert jobs.status_code == workers.status_code == queue.status_code == 200
    return Stored(
        jobs=tuple(j["job_id"] for j in jobs.json()),
        blobs=_files(data_dir / "blobs"),
        results=_files(data_dir / "results"),
        workers=tuple(sorted(workers.json())),
        pending_tasks=queue.json()["pending_tasks"],
    )


def framed(header: bytes) -> bytes:
    """One frame of a POST /results body: length, then the JSON header (any image follows)."""
    return struct.pack(">I", len(header)) + header


def frames_body(body: bytes) -> dict[str, Any]:
    """httpx's arguments to POST `body` to /results, labelled as workers label it."""
    return {"content": body, "headers": {"content-type": result_frames.MEDIA_TYPE}}


def outcome_frames(*outcomes: dict[str, Any]) -> dict[str, Any]:
    """httpx's arguments to POST these outcomes to /results; the bytes of an outcome's
    `image` follow its header as its result PNG."""
    body = b""
    for outcome in outcomes:
        header = dict(outcome)
        image = header.pop("image", None)
        if image is not None:
            header["size"] = len(image)
        body += framed(json.dumps(header).encode()) + (image or b"")
    return frames_body(body)


def detail_of(response: httpx.Response) -> str:
    """The `detail` string of an error answer, asserting the shape `{"detail": str}`."""
    assert response.headers.get("content-type", "").startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"detail"}, body
    assert isinstance(body["detail"], str) and body["detail"].strip(), body
    return str(body["detail"])


async def wait_job(client: httpx.AsyncClient, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
    """Poll GET /jobs/{job_id} until it is done or failed."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        job = (await client.get(f"/jobs/{job_id}")).json()
        if job["state"] in ("done", "failed"):
            return dict(job)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job {job_id} did not finish: {job}")
        await asyncio.sleep(0.1)
