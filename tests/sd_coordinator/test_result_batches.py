"""Batched worker reports: many result images in one POST /results, tasks started since the last
POST /working marked running together, outcomes without images stored in one transaction."""

from __future__ import annotations

import asyncio
import io
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from PIL import Image

from sd_common import result_frames, storage
from sd_common.result_frames import ResultHeader
from sd_coordinator.api import results as results_api
from sd_coordinator.result_body import SPOOL_BYTES
from support.api import asgi_client, make_settings, outcome_frames, png_bytes, running_app

TOKEN = "batch-token"
BLOCKERS = 64  # long sleeps that keep every consumer of the local worker busy


@pytest_asyncio.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An embedded coordinator whose local worker is kept busy, so tasks queued afterwards
    wait for a (pretend) remote worker to report them."""
    settings = make_settings(tmp_path, cluster_token=TOKEN)
    async with running_app(settings) as app:
        async with asgi_client(app, Authorization=f"Bearer {TOKEN}") as c:
            sent = await c.post(
                "/task", json={"type": "sleep", "payload": {"seconds": 60}, "copies": BLOCKERS}
            )
            assert sent.status_code == 202
            await asyncio.sleep(0.2)
            hello = {"name": "remote", "session": "s" * 32}
            assert (await c.post("/register", json=hello)).status_code == 200
            yield c


async def queued_image_tasks(client: httpx.AsyncClient, copies: int) -> tuple[str, list[str]]:
    sent = await client.post(
        "/upload",
        files={"file": ("a.png", png_bytes())},
        data={"ops": "grayscale", "copies": str(copies)},
    )
    assert sent.status_code == 202, sent.text
    job = (await client.get(f"/jobs/{sent.json()['job_id']}")).json()
    assert {t["state"] for t in job["tasks"]} == {"queued"}
    return job["job_id"], [t["task_id"] for t in job["tasks"]]


def frames(*results: tuple[str, bytes]) -> dict[str, Any]:
    body = result_frames.encode(
        [
            (ResultHeader(task_id=task_id, worker="remote", size=len(png), duration_s=0.5), png)
            for task_id, png in results
        ]
    )
    return {"content": body, "headers": {"content-type": result_frames.MEDIA_TYPE}}


async def test_one_request_stores_many_results_and_answers_each(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    job_id, tasks = await queued_image_tasks(client, 3)
    images = [png_bytes(colour=c) for c in ("red", "green", "blue")]

    response = await client.post("/results", **frames(*zip(tasks, images, strict=True)))

    assert response.status_code == 200, response.text
    answers = response.json()["answers"]
    assert [(a["task_id"], a["stored"], a["duplicate"]) for a in answers] == [
        (t, True, False) for t in tasks
    ]
    job = (await client.get(f"/jobs/{job_id}")).json()
    assert (job["state"], job["done"]) == ("done", 3)
    for task, image in zip(job["tasks"], images, strict=True):
        assert task["worker"] == "remote"
        assert (tmp_path / "results" / task["result"]).read_bytes() == image


async def test_a_repeated_result_is_a_duplicate_and_keeps_the_first_file(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    _, (task,) = await queued_image_tasks(client, 1)
    first, second = png_bytes(colour="red"), png_bytes(colour="blue")

    response = await client.post("/results", **frames((task, first), (task, second)))
    again = await client.post("/results", **frames((task, second)))

    assert [a["duplicate"] for a in response.json()["answers"]] == [False, True]
    assert again.json()["answers"][0]["duplicate"] is True
    assert (tmp_path / "results" / f"{task}.png").read_bytes() == first


async def test_images_outputs_and_failures_in_one_body_are_answered_in_order(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    job_id, (imaged, failed) = await queued_image_tasks(client, 2)
    unknown = uuid.uuid4().hex
    image = png_bytes(colour="red")

    response = await client.post(
        "/results",
        **outcome_frames(
            {"task_id": failed, "worker": "remote", "error": "boom"},
            {"task_id": unknown, "worker": "remote", "image": png_bytes()},
            {"task_id": imaged, "worker": "remote", "image": image, "duration_s": 0.5},
        ),
    )

    assert response.status_code == 200, response.text
    answers = [(a["task_id"], a.get("stored"), a.get("status")) for a in response.json()["answers"]]
    assert answers == [(failed, True, None), (unknown, None, 404), (imaged, True, None)]
    job = (await client.get(f"/jobs/{job_id}")).json()
    assert job["state"] == "failed"
    states = {t["task_id"]: (t["state"], t["error"]) for t in job["tasks"]}
    assert states == {imaged: ("done", None), failed: ("failed", "boom")}
    assert (tmp_path / "results" / f"{imaged}.png").read_bytes() == image


def noise_png(seed: int, side: int = 800) -> bytes:
    """A PNG of random pixels: about 1.9 MB, so a few of them cross the spooling step."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(seed).randbytes(side * side * 3)).save(
        out, "PNG", compress_level=1
    )
    return out.getvalue()


def streamed(body: bytes, chunk: int = 64 * 1024) -> dict[str, Any]:
    """A request body sent in chunks of a stream (no Content-Length), as a worker may."""

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), chunk):
            yield body[start : start + chunk]

    return {"content": chunks(), "headers": {"content-type": result_frames.MEDIA_TYPE}}


def results_on_disk(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "results").iterdir())


async def test_a_streamed_body_larger_than_the_spooling_step_stores_every_result(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    job_id, tasks = await queued_image_tasks(client, 4)
    images = [noise_png(seed) for seed in range(4)]
    assert sum(map(len, images)) > 1.5 * SPOOL_BYTES
    body = frames(*zip(tasks, images, strict=True))["content"]

    response = await client.post("/results", **streamed(body))

    assert response.status_code == 200, response.text
    assert all(a["stored"] and not a["duplicate"] for a in response.json()["answers"])
    job = (await client.get(f"/jobs/{job_id}")).json()
    assert (job["state"], job["done"]) == ("done", 4)
    for task, image in zip(job["tasks"], images, strict=True):
        assert (tmp_path / "results" / task["result"]).read_bytes() == image
    assert results_on_disk(tmp_path) == sorted(f"{t}.png" for t in tasks)  # nothing spooled left


async def test_images_larger_than_the_spooling_step_keep_their_place_among_the_others(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # Each large one goes to a file of its own as it arrives, the small ones in a batch.
    job_id, tasks = await queued_image_tasks(client, 4)
    large = noise_png(0, side=1300)
    assert len(large) > SPOOL_BYTES
    not_png = b"GIF89a" + large
    images = [png_bytes(colour="red"), large, not_png, png_bytes(colour="blue")]
    body = frames(*zip(tasks, images, strict=True))["content"]

    response = await client.post("/results", **streamed(body))

    assert response.status_code == 200, response.text
    answers = [(a["task_id"], a.get("stored"), a.get("error")) for a in response.json()["answers"]]
    assert answers == [
        (tasks[0], True, None),
        (tasks[1], True, None),
        (tasks[2], None, "a result image must be a PNG"),
        (tasks[3], True, None),
    ]
    job = (await client.get(f"/jobs/{job_id}")).json()
    for task, image in zip(job["tasks"], images, strict=True):
        if image is not not_png:
            assert (tmp_path / "results" / task["result"]).read_bytes() == image
    stored = sorted(f"{t}.png" for t in (tasks[0], tasks[1], tasks[3]))
    assert results_on_disk(tmp_path) == stored  # nothing spooled left


async def test_a_body_cut_short_after_spooling_stores_nothing_and_leaves_no_file(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    job_id, tasks = await queued_image_tasks(client, 4)
    images = [noise_png(seed) for seed in range(4)]
    body = frames(*zip(tasks, images, strict=True))["content"]
    cut = body[: len(body) - len(images[-1]) // 2]  # the first three are spooled by then

    response = await client.post("/results", **streamed(cut))

    assert response.status_code == 422
    assert "truncated result" in response.json()["detail"]
    job = (await client.get(f"/jobs/{job_id}")).json()
    assert (job["state"], job["done"]) == ("queued", 0)
    assert results_on_disk(tmp_path) == []


async def test_a_body_cut_short_inside_a_large_image_stores_nothing_and_leaves_no_file(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    job_id, tasks = await queued_image_tasks(client, 2)
    large = noise_png(1, side=1300)
    body = frames((tasks[0], png_bytes()), (tasks[1], large))["content"]
    cut = body[: len(body) - len(large) // 20]  # past the spooling step: in its own file

    response = await client.post("/results", **streamed(cut))

    assert response.status_code == 422
    assert "truncated result" in response.json()["detail"]
    job = (await client.get(f"/jobs/{job_id}")).json()
    assert (job["state"], job["done"]) == ("queued", 0)
    assert results_on_disk(tmp_path) == []


async def test_tasks_started_since_the_last_update_are_marked_running_together(
    client: httpx.AsyncClient,
) -> None:
    job_id, tasks = await queued_image_tasks(client, 4)
    update = {
        "name": "remote",
        "session": "s" * 32,
        "status": "busy",
        "task_id": tasks[3],
        "started": tasks[:3],
    }

    assert (await client.post("/working", json=update)).status_code == 200

    job = (await client.get(f"/jobs/{job_id}")).json()
    assert [(t["state"], t["worker"]) for t in job["tasks"]] == [("running", "remote")] * 4
    assert job["state"] == "running"


# -- results a worker wrote into a DATA_DIR it shares with the coordinator ------------------


async def test_register_offers_the_data_dir_with_this_runs_id(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    answer = (await client.post("/register", json={"name": "other"})).json()
    offer = answer["storage"]
    assert (Path(offer["data_dir"]) / "storage-id").read_text() == offer["id"]


async def test_a_result_written_in_place_is_stored_by_name_and_served(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    job_id, (task,) = await queued_image_tasks(client, 1)
    image = png_bytes(colour="green")
    incoming = storage.incoming_name(task)
    (tmp_path / "results" / incoming).write_bytes(image)

    outcome = {"task_id": task, "worker": "remote", "result": incoming, "duration_s": 0.1}
    response = await client.post("/results", **outcome_frames(outcome))

    assert response.status_code == 200, response.text
    assert response.json()["answers"][0]["stored"] is True
    job = (await client.get(f"/jobs/{job_id}")).json()
    assert (job["state"], job["tasks"][0]["result"]) == ("done", f"{task}.png")
    assert (await client.get(f"/result/{task}.png")).content == image
    assert not (tmp_path / "results" / incoming).exists()


async def test_a_late_result_written_in_place_never_replaces_the_stored_one(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    _, (task,) = await queued_image_tasks(client, 1)
    first, late = png_bytes(colour="green"), png_bytes(colour="red")
    for image in (first, late):
        incoming = storage.incoming_name(task)
        (tmp_path / "results" / incoming).write_bytes(image)
        outcome = {"task_id": task, "worker": "remote", "result": incoming}
        response = await client.post("/results", **outcome_frames(outcome))
        assert response.status_code == 200, response.text

    assert response.json()["answers"][0]["duplicate"] is True
    assert (await client.get(f"/result/{task}.png")).content == first
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [f"{task}.png"]


async def test_a_result_written_in_place_for_a_cancelled_task_is_removed(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    job_id, (task,) = await queued_image_tasks(client, 1)
    assert (await client.post(f"/jobs/{job_id}/cancel")).status_code == 200
    incoming = storage.incoming_name(task)
    (tmp_path / "results" / incoming).write_bytes(png_bytes(colour="green"))

    outcome = {"task_id": task, "worker": "remote", "result": incoming}
    response = await client.post("/results", **outcome_frames(outcome))

    assert response.status_code == 200, response.text
    assert response.json()["answers"][0]["duplicate"] is True  # the worker acks, nothing kept
    job = (await client.get(f"/jobs/{job_id}")).json()
    assert (job["state"], job["tasks"][0]["state"]) == ("cancelled", "cancelled")
    assert list((tmp_path / "results").iterdir()) == []


async def test_a_result_named_but_missing_or_not_a_png_is_refused_and_the_task_stays_queued(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    job_id, (missing, not_png) = await queued_image_tasks(client, 2)
    names = {t: storage.incoming_name(t) for t in (missing, not_png)}
    (tmp_path / "results" / names[not_png]).write_bytes(b"GIF89a not a png")
    outcomes = [{"task_id": t, "worker": "remote", "result": name} for t, name in names.items()]

    response = await client.post("/results", **outcome_frames(*outcomes))

    answers = response.json()["answers"]
    assert [(a["status"], "DATA_DIR" in a["error"]) for a in answers] == [(422, True)] * 2
    job = (await client.get(f"/jobs/{job_id}")).json()
    assert {t["state"] for t in job["tasks"]} == {"queued"}


async def test_a_result_may_only_name_its_own_task_file(client: httpx.AsyncClient) -> None:
    _, (task, other) = await queued_image_tasks(client, 2)
    failed = {"result": storage.incoming_name(task), "error": "failed, yet a result?"}
    # The stored name itself is never written in place either.
    for bad in (
        {"result": storage.incoming_name(other)},
        {"result": "../x.png"},
        {"result": f"{task}.png"},
        failed,
    ):
        outcome = {"task_id": task, "worker": "remote", **bad}
        response = await client.post("/results", **outcome_frames(outcome))
        assert response.status_code == 422, bad


def read_frames(body: bytes) -> list[tuple[dict[str, Any], bytes | None]]:
    """A GET /jobs/{id}/results body: each task with its image (None when none follows)."""
    out, at = [], 0
    while at < len(body):
        length = int.from_bytes(body[at : at + 4], "big")
        task = orjson.loads(body[at + 4 : at + 4 + length])
        at += 4 + length
        size = task.pop("size", None)
        out.append((task, body[at : at + size] if size is not None else None))
        at += size or 0
    return out


async def test_finished_results_come_with_their_images_in_finishing_order_a_page_at_a_time(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, tasks = await queued_image_tasks(client, 4)
    images = {t: png_bytes(colour=c) for t, c in zip(tasks, ("red", "green", "blue"), strict=False)}
    order = [tasks[2], tasks[0], tasks[1]]  # finishing order, not task order
    for task in order:
        assert (await client.post("/results", **frames((task, images[task])))).status_code == 200
    failure = {"task_id": tasks[3], "worker": "remote", "error": "corrupt input"}
    assert (await client.post("/results", **outcome_frames(failure))).status_code == 200

    whole = await client.get(f"/jobs/{job_id}/results")
    assert whole.status_code == 200
    assert whole.headers["content-type"] == result_frames.MEDIA_TYPE
    got = read_frames(whole.content)
    assert [(t["task_id"], t["state"], png) for t, png in got] == [
        *((t, "done", images[t]) for t in order),
        (tasks[3], "failed", None),
    ]
    assert got[3][0]["error"] == "corrupt input"
    assert whole.headers["x-next-cursor"] == str(got[3][0]["finished_seq"])

    # Pages cut at a byte budget still hold one result each, and the cursor walks them.
    monkeypatch.setattr(results_api, "RESULTS_PAGE_BYTES", 1)
    cursor, seen = 0, []
    while page := read_frames(
        (answer := await client.get(f"/jobs/{job_id}/results", params={"cursor": cursor})).content
    ):
        assert len(page) <= 2  # an image alone, or an image and the failure after it
        seen += [t["task_id"] for t, _ in page]
        cursor = int(answer.headers["x-next-cursor"])
    assert seen == [*order, tasks[3]]
    assert answer.headers["x-next-cursor"] == str(cursor)  # nothing new: the same cursor

    unknown = await client.get(f"/jobs/{uuid.uuid4().hex}/results")
    assert unknown.status_code == 404


def finished_frames(body: bytes) -> list[tuple[dict[str, Any], bytes | None]]:
    """The tasks of a GET /jobs/{id}/results body, each with its PNG (or None)."""
    out, at = [], 0
    while at < len(body):
        (length,) = result_frames.LENGTH.unpack_from(body, at)
        at += result_frames.LENGTH.size
        header = orjson.loads(body[at : at + length])
        at += length
        size = header.pop("size", None)
        out.append((header, None if size is None else body[at : at + size]))
        at += size or 0
    return out


async def test_a_results_request_that_waits_answers_as_soon_as_a_task_finishes(
    client: httpx.AsyncClient,
) -> None:
    job_id, tasks = await queued_image_tasks(client, 2)
    url = f"/jobs/{job_id}/results"
    waiting = asyncio.create_task(client.get(url, params={"wait": 4}))
    await asyncio.sleep(0.3)
    assert not waiting.done(), "nothing has finished: the request waits"
    red, green = png_bytes(colour="red"), png_bytes(colour="green")
    assert (await client.post("/results", **frames((tasks[0], red)))).status_code == 200

    first = await asyncio.wait_for(waiting, 3)  # woken by the store, well before its 4 s
    assert first.status_code == 200
    assert [(t["task_id"], png) for t, png in finished_frames(first.content)] == [(tasks[0], red)]
    cursor = first.headers["X-Next-Cursor"]

    waiting = asyncio.create_task(client.get(url, params={"wait": 4, "cursor": cursor}))
    assert (await client.post("/results", **frames((tasks[1], green)))).status_code == 200
    second = await asyncio.wait_for(waiting, 3)
    assert [(t["task_id"], png) for t, png in finished_frames(second.content)] == [
        (tasks[1], green)
    ]

    # The job is done: nothing more will finish, so a waiting request answers at once, empty.
    last = second.headers["X-Next-Cursor"]
    done = await asyncio.wait_for(client.get(url, params={"wait": 4, "cursor": last}), 3)
    assert (done.status_code, done.content, done.headers["X-Next-Cursor"]) == (200, b"", last)


async def test_a_wait_times_out_empty_is_bounded_and_an_unknown_job_is_refused_at_once(
    client: httpx.AsyncClient,
) -> None:
    job_id, _ = await queued_image_tasks(client, 1)
    url = f"/jobs/{job_id}/results"
    loop = asyncio.get_running_loop()
    started = loop.time()
    empty = await client.get(url, params={"wait": 0.5})
    assert (empty.status_code, empty.content) == (200, b"")
    assert 0.5 <= loop.time() - started < 5
    too_long = await client.get(url, params={"wait": 5})
    assert too_long.status_code == 422
    unknown = await asyncio.wait_for(
        client.get(f"/jobs/{uuid.uuid4().hex}/results", params={"wait": 4}), 5
    )
    assert unknown.status_code == 404
