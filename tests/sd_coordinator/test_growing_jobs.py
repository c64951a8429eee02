"""Jobs that grow batch by batch, dedupe inside a job, cancel, paginated listings and the
streamed zip, on the embedded coordinator in process."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from PIL import Image, ImageOps

from sd_common.result_names import clean_name
from support.api import asgi_client, detail_of, make_settings, png_bytes, running_app
from support.images import decode, same_pixels, sample_image


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(make_settings(tmp_path)) as app, asgi_client(app) as client:
        yield client


def files(*pairs: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (name, data, "application/octet-stream")) for name, data in pairs]


async def new_job(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/jobs", json={"ops": "grayscale", **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def wait_state(
    client: httpx.AsyncClient, job_id: str, states: tuple[str, ...], timeout_s: float = 60
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        job = (await client.get(f"/jobs/{job_id}")).json()
        if job["state"] in states:
            return dict(job)
        assert asyncio.get_running_loop().time() < deadline, job
        await asyncio.sleep(0.05)


async def all_tasks(client: httpx.AsyncClient, job_id: str, **params: Any) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor is not None else {})}
        page = (await client.get(f"/jobs/{job_id}/tasks", params=query)).json()
        tasks += page["tasks"]
        cursor = page["next"]
        if cursor is None:
            return tasks


async def test_a_job_grows_batch_by_batch_and_is_done_only_once_closed(
    api: httpx.AsyncClient,
) -> None:
    job = await new_job(api, name="trip")
    assert job["state"] == "queued" and job["open"] and job["max_files"] == 100
    first = sample_image(seed=1)
    answer = await api.post(f"/jobs/{job['job_id']}/files", files=files(("day1/a.jpg", first)))
    assert answer.status_code == 202, answer.text
    assert answer.json()["files"] == [{"name": "day1/a.jpg", "status": "queued", "tasks": 1}]
    # The first batch is processed while the job is still open: it is running, never done.
    deadline = asyncio.get_running_loop().time() + 30
    while (job_now := (await api.get(f"/jobs/{job['job_id']}")).json())["done"] < 1:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert job_now["state"] == "running"
    second = sample_image(seed=2)
    await api.post(f"/jobs/{job['job_id']}/files", files=files(("day2/b.jpg", second)))
    closed = await api.post(f"/jobs/{job['job_id']}/close")
    assert closed.status_code == 200 and not closed.json()["open"]
    done = await wait_state(api, job["job_id"], ("done", "failed"))
    assert done["state"] == "done" and done["total"] == done["done"] == 2
    by_name = {t["filename"]: t for t in done["tasks"]}
    for name, data in (("day1/a.jpg", first), ("day2/b.jpg", second)):
        result = await api.get(f"/result/{by_name[name]['result']}")
        assert same_pixels(decode(result.content), ImageOps.grayscale(decode(data)))


async def test_the_same_content_twice_in_a_job_is_processed_once_and_given_to_both_names(
    api: httpx.AsyncClient,
) -> None:
    job = await new_job(api)
    photo = sample_image(seed=3)
    url = f"/jobs/{job['job_id']}/files"
    first = (await api.post(url, files=files(("a.jpg", photo), ("copy/of-a.jpg", photo)))).json()
    assert [f["status"] for f in first["files"]] == ["queued", "queued"]
    assert first["files"][1]["same_as"] == "a.jpg"
    # A retried batch adds nothing.
    again = (await api.post(url, files=files(("a.jpg", photo)))).json()
    assert again["tasks"] == 0 and again["files"][0]["status"] == "duplicate"
    # Sent once more after the first finished: that name gets the finished result at once.
    await wait_state(api, job["job_id"], ("running",))
    deadline = asyncio.get_running_loop().time() + 30
    while (await api.get(f"/jobs/{job['job_id']}")).json()["done"] < 2:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    await api.post(url, files=files(("late.jpg", photo)))
    await api.post(f"/jobs/{job['job_id']}/close")
    done = await wait_state(api, job["job_id"], ("done", "failed"))
    assert done["state"] == "done" and done["total"] == 3 and done["done"] == 3
    results = {t["filename"]: t["result"] for t in done["tasks"]}
    assert len(set(results.values())) == 1  # one task was processed, its result given to all
    originals = [t for t in done["tasks"] if t["dup_of"] is None]
    assert [t["filename"] for t in originals] == ["a.jpg"]
    metrics = (await api.get("/metrics")).text
    assert 'sd_tasks_total{state="queued"} 1.0' in metrics  # one task was published


async def test_a_batch_with_bad_files_queues_the_good_ones_and_lists_the_bad(
    api: httpx.AsyncClient,
) -> None:
    job = await new_job(api)
    answer = await api.post(
        f"/jobs/{job['job_id']}/files",
        files=files(
            ("good.png", png_bytes()),
            ("notes.txt", b"hello"),
            ("empty.jpg", b""),
            ("ñandú (1).png", png_bytes(colour="red")),
        ),
    )
    assert answer.status_code == 202
    by_name = {f["name"]: f for f in answer.json()["files"]}
    assert by_name["good.png"]["status"] == by_name["ñandú (1).png"]["status"] == "queued"
    assert by_name["notes.txt"]["status"] == "rejected"
    assert "not a supported image" in by_name["notes.txt"]["detail"]
    assert by_name["empty.jpg"]["detail"] == "empty file; expected an image"
    assert answer.json()["rejected"] == 2 and answer.json()["tasks"] == 2


async def test_uploads_into_closed_cancelled_or_unknown_jobs_are_refused(
    api: httpx.AsyncClient,
) -> None:
    closed, cancelled = await new_job(api), await new_job(api)
    await api.post(f"/jobs/{closed['job_id']}/close")
    await api.post(f"/jobs/{cancelled['job_id']}/cancel")
    one = files(("a.png", png_bytes()))
    answer = await api.post(f"/jobs/{closed['job_id']}/files", files=one)
    assert answer.status_code == 409
    assert detail_of(answer) == (
        f"job {closed['job_id']} is closed; it takes no more files (create a new job)"
    )
    answer = await api.post(f"/jobs/{cancelled['job_id']}/files", files=one)
    assert answer.status_code == 409
    assert detail_of(answer) == f"job {cancelled['job_id']} was cancelled; it takes no more files"
    answer = await api.post("/jobs/0123456789abcdef0123456789abcdef/files", files=one)
    assert answer.status_code == 404
    assert detail_of(answer) == "unknown job 0123456789abcdef0123456789abcdef"
    for body, detail in (
        ({"ops": "sparkle"}, 'ops: step 1 "sparkle": unknown operation'),
        ({"copies": 0}, "copies: Input should be greater than or equal to 1"),
    ):
        answer = await api.post("/jobs", json=body)
        assert answer.status_code == 422 and detail_of(answer).startswith(detail)


async def test_a_cancelled_job_keeps_what_was_done_and_its_queue_drains_without_running(
    api: httpx.AsyncClient,
) -> None:
    sent = await api.post(
        "/task", json={"type": "sleep", "payload": {"seconds": 2}, "copies": 1000}
    )
    job_id = sent.json()["job_id"]
    cancelled = await api.post(f"/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    # 1000 two-second tasks would keep the local worker busy for over a minute; skipped, the
    # queue is empty in a moment.
    deadline = asyncio.get_running_loop().time() + 10
    while (await api.get("/queue_size")).json()["pending_tasks"]:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.5)  # the ones that were running finish (their results are dropped)
    job = (await api.get(f"/jobs/{job_id}", params={"limit": 0})).json()
    assert job["state"] == "cancelled"
    assert job["done"] == 0 and job["cancelled"] == 1000
    again = await api.post(f"/jobs/{job_id}/cancel")
    assert again.status_code == 200
    assert (await all_tasks(api, job_id, state="cancelled", limit=300)).__len__() == 1000


async def test_a_finished_job_cannot_be_cancelled(api: httpx.AsyncClient) -> None:
    job = await new_job(api)
    await api.post(f"/jobs/{job['job_id']}/files", files=files(("a.png", png_bytes())))
    await api.post(f"/jobs/{job['job_id']}/close")
    await wait_state(api, job["job_id"], ("done",))
    answer = await api.post(f"/jobs/{job['job_id']}/cancel")
    assert answer.status_code == 409
    assert detail_of(answer) == (
        f"job {job['job_id']} has already finished; there is nothing to cancel"
    )
    answer = await api.post("/jobs/0123456789abcdef0123456789abcdef/cancel")
    assert answer.status_code == 404


async def test_tasks_and_jobs_are_listed_page_by_page(api: httpx.AsyncClient) -> None:
    job = await new_job(api, copies=3)
    pngs = [(f"p{i}.png", png_bytes(colour=(i, 0, 0))) for i in range(50)]  # type: ignore[arg-type]
    await api.post(f"/jobs/{job['job_id']}/files", files=files(*pngs))
    await api.post(f"/jobs/{job['job_id']}/close")
    await wait_state(api, job["job_id"], ("done",))
    first = (await api.get(f"/jobs/{job['job_id']}", params={"limit": 40})).json()
    assert len(first["tasks"]) == 40 and first["tasks_next"] == 40
    tasks = await all_tasks(api, job["job_id"], limit=64)
    assert [t["seq"] for t in tasks] == list(range(150))
    assert tasks[:4] == first["tasks"][:4]
    assert {(t["filename"], t["copy"]) for t in tasks} == {
        (f"p{i}.png", c) for i in range(50) for c in range(3)
    }
    assert await all_tasks(api, job["job_id"], state="failed") == []
    finished = (
        await api.get(f"/jobs/{job['job_id']}/tasks", params={"order": "finished", "limit": 1000})
    ).json()
    assert sorted(t["finished_seq"] for t in finished["tasks"]) == list(range(1, 151))
    assert finished["next"] == 150
    later = await api.get(
        f"/jobs/{job['job_id']}/tasks", params={"order": "finished", "cursor": 150}
    )
    assert later.json() == {"tasks": [], "next": 150}
    # GET /jobs: newest first, `before` continues after a page's last job.
    for _ in range(4):
        await new_job(api)
    everything = [j["job_id"] for j in (await api.get("/jobs")).json()]
    page = (await api.get("/jobs", params={"limit": 2})).json()
    rest = (await api.get("/jobs", params={"before": page[-1]["job_id"]})).json()
    assert [j["job_id"] for j in page + rest] == everything and len(everything) == 5
    answer = await api.get(f"/jobs/{job['job_id']}/tasks", params={"state": "lost"})
    assert answer.status_code == 422


async def test_the_zip_holds_every_result_under_its_relative_path(
    api: httpx.AsyncClient,
) -> None:
    job = await new_job(api)
    photo = sample_image(seed=5)
    await api.post(
        f"/jobs/{job['job_id']}/files",
        files=files(("trip/day1/a.jpg", photo), ("trip/b.png", png_bytes()), ("dup/a.jpg", photo)),
    )
    await api.post(f"/jobs/{job['job_id']}/close")
    await wait_state(api, job["job_id"], ("done",))
    answer = await api.get(f"/jobs/{job['job_id']}/zip")
    assert answer.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == ["dup/a.png", "trip/b.png", "trip/day1/a.png"]
    image = Image.open(io.BytesIO(archive.read("dup/a.png")))
    assert same_pixels(image, ImageOps.grayscale(decode(photo)))


def test_names_in_a_job_keep_their_folders_and_lose_what_could_escape() -> None:
    assert clean_name("trip/day1/a.jpg") == "trip/day1/a.jpg"
    assert clean_name("..\\..\\etc/passwd") == "etc/passwd"
    assert clean_name("/abs//./x.png") == "abs/x.png"
    assert clean_name("") == "image" and clean_name("../..") == "image"
    assert clean_name("a\x00b\nc.png") == "abc.png"


@pytest.mark.parametrize("limit", [1])
async def test_zip_downloads_past_the_bound_get_503(tmp_path: Path, limit: int) -> None:
    from sd_coordinator.api.results import ZipSlots

    slots = ZipSlots(limit)
    slots.take()
    with pytest.raises(Exception) as refused:
        slots.take()
    assert refused.value.status_code == 503  # type: ignore[attr-defined]
    slots.give_back()
    slots.take()


@pytest_asyncio.fixture
async def small_api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path, max_upload_mb=0.5)
    async with running_app(settings) as app, asgi_client(app) as client:
        yield client


async def test_bad_input_to_growing_jobs_gets_the_documented_answers(
    small_api: httpx.AsyncClient,
) -> None:
    api = small_api
    job = (await new_job(api))["job_id"]
    one = files(("a.png", png_bytes()))
    await api.post(f"/jobs/{job}/files", files=one)
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        (
            "POST",
            "/jobs",
            {"json": {"ops": "grayscale", "priority": 1}},
            422,
            "priority: Extra inputs are not permitted",
        ),
        (
            "POST",
            "/jobs",
            {"json": {"copies": 1001}},
            422,
            "copies: Input should be less than or equal to 1000",
        ),
        (
            "POST",
            f"/jobs/{job}/files",
            {"files": files(*[(f"{i}.png", b"x") for i in range(101)])},
            422,
            "too many files: at most 100 per batch",
        ),
        (
            "POST",
            f"/jobs/{job}/files",
            {"data": {"ops": "grayscale"}},
            422,
            "file: Field required (send the files as multipart/form-data, one part named "
            "'file' per file, with its filename)",
        ),
        (
            "POST",
            f"/jobs/{job}/files",
            {"files": files(("big.png", b"\0" * 600_000))},
            413,
            "request body too large: the limit is 0.5 MB",
        ),
        (
            "POST",
            "/jobs/0123456789abcdef0123456789abcdef/close",
            {},
            404,
            "unknown job 0123456789abcdef0123456789abcdef",
        ),
        (
            "GET",
            f"/jobs/{job}/tasks",
            {"params": {"state": "lost"}},
            422,
            "state: Input should be 'queued', 'running', 'done', 'failed' or 'cancelled'",
        ),
        (
            "GET",
            f"/jobs/{job}/tasks",
            {"params": {"cursor": -1}},
            422,
            "cursor: Input should be greater than or equal to 0",
        ),
        (
            "GET",
            f"/jobs/{job}/tasks",
            {"params": {"limit": 0}},
            422,
            "limit: Input should be greater than or equal to 1",
        ),
        ("GET", "/jobs/nope/tasks", {}, 404, "unknown job nope"),
    ]
    for method, path, kwargs, status, detail in cases:
        answer = await api.request(method, path, **kwargs)
        assert (answer.status_code, detail_of(answer)) == (status, detail), (path, kwargs)
    # Per file, in a 202: the same name with other content is refused, the rest goes through.
    answer = await api.post(
        f"/jobs/{job}/files",
        files=files(("a.png", png_bytes(colour="red")), ("b.png", png_bytes())),
    )
    assert answer.status_code == 202
    assert answer.json()["files"] == [
        {
            "name": "a.png",
            "status": "rejected",
            "tasks": 0,
            "detail": "a file of this name with other content is already in this job",
        },
        {"name": "b.png", "status": "queued", "tasks": 1, "same_as": "a.png"},
    ]
    assert (await api.get("/jobs", params={"before": "nope"})).json() == []


async def test_a_file_truncated_after_its_header_is_queued_and_its_task_fails_with_the_reason(
    api: httpx.AsyncClient,
) -> None:
    job = await new_job(api)
    whole = sample_image(fmt="PNG", seed=9)
    answer = await api.post(
        f"/jobs/{job['job_id']}/files",
        files=files(("cut.png", whole[: len(whole) // 2]), ("whole.png", whole)),
    )
    assert [f["status"] for f in answer.json()["files"]] == ["queued", "queued"]
    await api.post(f"/jobs/{job['job_id']}/close")
    done = await wait_state(api, job["job_id"], ("done", "failed"))
    assert (done["state"], done["done"], done["failed"]) == ("failed", 1, 1)
    cut = next(t for t in done["tasks"] if t["filename"] == "cut.png")
    assert cut["state"] == "failed" and cut["result"] is None
    assert cut["error"].startswith("truncated or corrupt PNG image")


def multipart(*parts: bytes, closed: bool = True, boundary: bytes = b"sdbound") -> dict[str, Any]:
    """A hand-made multipart/form-data body, for what httpx would never send."""
    body = b"".join(b"--" + boundary + b"\r\n" + part for part in parts)
    body += b"--" + boundary + b"--\r\n" if closed else b""
    return {
        "content": body,
        "headers": {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"},
    }


def part(name: bytes, data: bytes, filename: bytes | None = None) -> bytes:
    disposition = b'form-data; name="' + name + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    return b"Content-Disposition: " + disposition + b"\r\n\r\n" + data + b"\r\n"


async def test_a_batch_body_keeps_its_files_skips_other_parts_and_refuses_malformed_ones(
    api: httpx.AsyncClient,
) -> None:
    job = (await new_job(api))["job_id"]
    url = f"/jobs/{job}/files"
    png = png_bytes()
    kept = await api.post(
        url,
        **multipart(
            part(b"note", b"not a file"),
            part(b"file", png, "días/ñandú.png".encode()),
            part(b"file", png, b"copy.png"),
        ),
    )
    assert kept.status_code == 202, kept.text
    names = [f["name"] for f in kept.json()["files"]]
    assert names == ["días/ñandú.png", "copy.png"]

    malformed = "malformed multipart body: "
    refused = {
        "cut before its closing boundary": (
            multipart(part(b"file", png, b"a.png"), closed=False),
            400,
            malformed + "it ends before its closing boundary",
        ),
        "a part without a name": (
            multipart(b"Content-Disposition: form-data\r\n\r\nx\r\n"),
            400,
            'each multipart part needs a Content-Disposition with a "name"',
        ),
        "no boundary": (
            {"content": b"x", "headers": {"Content-Type": "multipart/form-data"}},
            400,
            malformed + "its Content-Type has no boundary",
        ),
        "a file sent as a text field": (
            multipart(part(b"file", png)),
            422,
            "file: must be a file part (multipart with a filename)",
        ),
        "no part named file": (
            multipart(part(b"note", b"x")),
            422,
            "no file: send one or more multipart parts named 'file'",
        ),
        "too many parts": (
            multipart(*[part(b"note", b"x") for _ in range(111)]),
            422,
            "too many parts: at most 110 in one body",
        ),
    }
    for case, (request, status, detail) in refused.items():
        answer = await api.post(url, **request)
        assert (answer.status_code, detail_of(answer)) == (status, detail), case
    tasks = await all_tasks(api, job)
    assert len(tasks) == 2, "a refused body adds nothing"
