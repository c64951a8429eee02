"""GET /result, /inputs and /blobs serve only what the coordinator stored: a recorded result of a
finished task, as a regular file, never through a link, never blocking on a FIFO."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio
from fastapi import FastAPI

from sd_common.messages import InputRef, TaskMessage
from support.api import asgi_client, make_settings, png_bytes, running_app, wait_job

SECRET = b"root:x:0:0:secret\n"


@pytest_asyncio.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, dict]]:
    """An embedded coordinator with one finished job of one task."""
    async with running_app(make_settings(tmp_path / "data")) as app, asgi_client(app) as client:
        sent = await client.post("/upload", files={"file": ("a.png", png_bytes())})
        job = await wait_job(client, sent.json()["job_id"])
        assert job["state"] == "done"
        yield app, client, job


def results_dir(app: FastAPI) -> Path:
    return Path(app.state.services.blobs.results_dir)


async def test_a_stored_result_is_served(served: tuple[FastAPI, httpx.AsyncClient, dict]) -> None:
    app, client, job = served
    name = job["tasks"][0]["result"]
    response = await client.get(f"/result/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == (results_dir(app) / name).read_bytes()


async def test_a_file_in_results_that_no_task_recorded_is_not_served(
    served: tuple[FastAPI, httpx.AsyncClient, dict],
) -> None:
    app, client, _ = served
    (results_dir(app) / f"{'ab' * 16}.png").write_bytes(png_bytes())
    response = await client.get(f"/result/{'ab' * 16}.png")
    assert response.status_code == 404


async def test_a_symlink_in_results_is_never_followed(
    served: tuple[FastAPI, httpx.AsyncClient, dict], tmp_path: Path
) -> None:
    app, client, job = served
    secret = tmp_path / "passwd"
    secret.write_bytes(SECRET)
    planted = results_dir(app) / f"{'cd' * 16}.png"
    planted.symlink_to(secret)
    stored = results_dir(app) / job["tasks"][0]["result"]
    stored.unlink()
    stored.symlink_to(secret)  # even in place of a recorded result

    for name in (planted.name, stored.name):
        response = await client.get(f"/result/{name}")
        assert response.status_code == 404, name
        assert SECRET not in response.content


async def test_a_fifo_in_place_of_a_result_or_input_answers_404_at_once(
    served: tuple[FastAPI, httpx.AsyncClient, dict],
) -> None:
    app, client, job = served
    stored = results_dir(app) / job["tasks"][0]["result"]
    stored.unlink()
    os.mkfifo(stored)
    blobs = app.state.services.blobs
    sha256 = job["tasks"][0]["input"]
    source = blobs.input_path(sha256)
    source.unlink()
    os.mkfifo(source)

    for path in (f"/result/{stored.name}", f"/inputs/{sha256}", f"/blobs/{sha256}"):
        response = await asyncio.wait_for(client.get(path), 5)
        assert response.status_code == 404, path


async def test_a_symlinked_input_is_never_followed(
    served: tuple[FastAPI, httpx.AsyncClient, dict], tmp_path: Path
) -> None:
    app, client, job = served
    source = app.state.services.blobs.input_path(job["tasks"][0]["input"])
    secret = tmp_path / "passwd"
    secret.write_bytes(SECRET)
    source.unlink()
    source.symlink_to(secret)
    for path in (f"/inputs/{source.name}", f"/blobs/{source.name}"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert SECRET not in response.content


async def test_a_late_duplicate_from_a_worker_sharing_the_data_dir_leaves_the_stored_file(
    served: tuple[FastAPI, httpx.AsyncClient, dict],
) -> None:
    """A redelivered task whose first result is stored: the worker (sharing DATA_DIR, as the
    local worker does) runs it again, and the stored file stays the very same file."""
    app, _, job = served
    task = job["tasks"][0]
    stored = results_dir(app) / task["result"]
    before = stored.stat()
    processor = app.state.services.local_worker.processor
    assert processor.shared is not None
    source = app.state.services.blobs.input_path(task["input"])
    ref = InputRef(sha256=task["input"], size=source.stat().st_size)
    again = TaskMessage(
        task_id=task["task_id"], job_id=job["job_id"], type="image", ops="grayscale", input=ref
    )

    await processor.handle(again)

    after = stored.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in results_dir(app).iterdir()) == [stored.name]


async def test_serving_results_and_inputs_leaves_no_file_open(
    served: tuple[FastAPI, httpx.AsyncClient, dict],
) -> None:
    _, client, job = served
    task = job["tasks"][0]
    paths = [f"/result/{task['result']}", f"/inputs/{task['input']}", f"/blobs/{task['input']}"]
    await client.get(paths[0])  # anything opened once for good is open by now
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        for path in paths:
            assert (await client.get(path)).status_code == 200
    assert len(os.listdir("/proc/self/fd")) <= before + 2
