"""A token in the query string (`?token=`) counts only where a browser cannot send a header:
the event stream, result and input images, the zip download. Never on the rest of the user API,
never on worker endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from support.api import asgi_client, make_settings, outcome_frames, png_bytes, running_app, wait_job

CLUSTER = "cluster-secret"
API = "api-secret"


@pytest_asyncio.fixture
async def finished(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, dict]]:
    """Both tokens set; one finished job; a client that sends no header."""
    settings = make_settings(tmp_path, cluster_token=CLUSTER, api_token=API)
    async with running_app(settings) as app, asgi_client(app) as client:
        headers = {"authorization": f"Bearer {API}"}
        sent = await client.post("/upload", files={"file": ("a.png", png_bytes())}, headers=headers)
        async with asgi_client(app, **headers) as authorized:
            job = await wait_job(authorized, sent.json()["job_id"])
        yield app, client, job


async def test_images_and_the_zip_accept_the_token_in_the_query(
    finished: tuple[FastAPI, httpx.AsyncClient, dict],
) -> None:
    _, client, job = finished
    task = job["tasks"][0]
    for path in (
        f"/result/{task['result']}",
        f"/inputs/{task['input']}",
        f"/jobs/{job['job_id']}/zip",
    ):
        assert (await client.get(path, params={"token": API})).status_code == 200, path
        assert (await client.get(path)).status_code == 401, path


@pytest.mark.parametrize("path", ["/jobs", "/workers", "/queue_size", "/tps", "/metrics"])
async def test_the_rest_of_the_user_api_ignores_a_token_in_the_query(
    finished: tuple[FastAPI, httpx.AsyncClient, dict], path: str
) -> None:
    _, client, _ = finished
    assert (await client.get(path, params={"token": API})).status_code == 401


async def test_writes_ignore_a_token_in_the_query(
    finished: tuple[FastAPI, httpx.AsyncClient, dict],
) -> None:
    _, client, _ = finished
    response = await client.post(
        "/task", params={"token": API}, json={"type": "sleep", "payload": {"seconds": 0}}
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    "method,path,kwargs",
    [
        ("POST", "/register", {"json": {"name": "w1"}}),
        ("POST", "/report", {"json": {"name": "w1"}}),
        ("GET", f"/blobs/{'cd' * 32}", {}),
        (
            "POST",
            "/results",
            {"content": outcome_frames({"task_id": "ab" * 16, "worker": "w1"})["content"]},
        ),
    ],
)
async def test_worker_endpoints_never_take_the_token_from_the_query(
    finished: tuple[FastAPI, httpx.AsyncClient, dict], method: str, path: str, kwargs: dict
) -> None:
    _, client, _ = finished
    response = await client.request(method, path, params={"token": CLUSTER}, **kwargs)
    assert response.status_code == 401, response.text
