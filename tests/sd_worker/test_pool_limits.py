"""Each pool process has a memory cap and each task a time limit: a task past either fails with
that reason, its process is replaced, and the other tasks go on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sd_worker.executor import Executor
from sd_worker.pool_limits import TaskTimedOut
from support import pool_tasks
from support.api import asgi_client, make_settings, png_bytes, running_app, wait_job


@pytest.fixture(params=[False, True], ids=["loop pool", "portable pool"])
async def limited(request: pytest.FixtureRequest):
    pool = Executor(2, memory_mb=512, time_limit_s=3, portable=request.param)
    pool.start()
    yield pool
    pool.stop()


async def live_pids(executor: Executor) -> set[int]:
    return set(await asyncio.gather(*(executor.run(pool_tasks.pid) for _ in range(20))))


async def test_a_task_past_the_time_limit_fails_and_its_process_is_replaced(
    limited: Executor,
) -> None:
    before = await live_pids(limited)
    neighbours = [limited.run(pool_tasks.slow_square, i, 0.3) for i in range(6)]
    stuck = limited.run(pool_tasks.slow_square, 7, 60)

    results = await asyncio.wait_for(asyncio.gather(*neighbours, stuck, return_exceptions=True), 30)

    assert results[:6] == [i * i for i in range(6)]
    assert isinstance(results[6], TaskTimedOut) and "3 s" in str(results[6])
    # A fresh process takes the killed one's place (it may still be starting a moment).
    deadline = asyncio.get_running_loop().time() + 15
    while not (await live_pids(limited)) - before:
        assert asyncio.get_running_loop().time() < deadline, "no fresh process"
        await asyncio.sleep(0.2)


async def test_a_task_past_the_memory_cap_fails_with_memory_error_and_its_process_is_replaced(
    limited: Executor,
) -> None:
    before = await live_pids(limited)
    with pytest.raises(MemoryError):
        await limited.run(pool_tasks.big_image, 20_000)  # 1.6 GB of pixels
    assert await limited.run(pool_tasks.big_image, 1000) == 1000  # modest ones still fit
    if not limited.portable:  # (the portable pool keeps its processes: no way to retire one)
        # The fresh process may still be starting a moment on a loaded machine.
        deadline = asyncio.get_running_loop().time() + 15
        while len(after := await live_pids(limited)) < 2:
            assert asyncio.get_running_loop().time() < deadline, "no fresh process"
            await asyncio.sleep(0.2)
        assert len(after) == 2 and len(after - before) == 1


async def test_a_stuck_task_fails_with_its_reason_and_the_queue_keeps_flowing(
    tmp_path: Path,
) -> None:
    settings = make_settings(
        tmp_path, task_modules=["support.poison_tasks"], task_time_limit_s=2, delivery_limit=2
    )
    async with running_app(settings) as app, asgi_client(app) as client:
        workers = app.state.services.local_worker.processor.cores
        stuck = await client.post(
            "/task", json={"type": "linger", "payload": {"seconds": 120}, "copies": workers}
        )
        quick = await client.post(
            "/task", json={"type": "linger", "payload": {"seconds": 0.01}, "copies": 20}
        )
        job = await wait_job(client, stuck.json()["job_id"], timeout_s=60)
        assert job["state"] == "failed"
        assert all("time limit of 2 s" in t["error"] for t in job["tasks"]), job["tasks"]
        done = await wait_job(client, quick.json()["job_id"], timeout_s=60)
        assert done["state"] == "done", [(t["task_id"][-2:], t["state"]) for t in done["tasks"]]


async def test_an_image_past_the_memory_cap_fails_with_its_reason_and_the_next_one_runs(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, pool_memory_mb=300)
    big, small = png_bytes(7000, 7000), png_bytes(64, 64)  # 49 Mpx: ~196 MB a copy in Pillow
    async with running_app(settings) as app, asgi_client(app) as client:
        sent = await client.post(
            "/upload", files={"file": ("big.png", big)}, data={"ops": "sepia,blur:3,edges"}
        )
        assert sent.status_code == 202, sent.text
        job = await wait_job(client, sent.json()["job_id"], timeout_s=120)
        assert job["state"] == "failed", job
        assert "ran out of memory" in job["tasks"][0]["error"]
        assert "POOL_MEMORY_MB=300" in job["tasks"][0]["error"]
        again = await client.post(
            "/upload", files={"file": ("small.png", small)}, data={"copies": "10"}
        )
        assert (await wait_job(client, again.json()["job_id"]))["state"] == "done"
