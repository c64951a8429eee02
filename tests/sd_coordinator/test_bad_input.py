"""Every kind of bad input gets a clear 4xx `{"detail": str}`, stores nothing, enqueues nothing,
and leaves the coordinator healthy (docs/bad-input.md lists the answers)."""

from __future__ import annotations

import asyncio
import io
import json
import select
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from PIL import Image

from support.api import (
    asgi_client,
    detail_of,
    framed,
    frames_body,
    make_settings,
    outcome_frames,
    png_bytes,
    png_claiming,
    raw_get,
    running_app,
    stored,
    wait_job,
)
from support.broker import delete_queues, unique_queue
from support.cluster import Cluster

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_UPLOAD_MB = 0.5
UPLOAD_LIMIT = int(MAX_UPLOAD_MB * 1024 * 1024)
JSON_LIMIT = 1024 * 1024
CHUNK = 64 * 1024
HEX32 = "0123456789abcdef" * 2
HEX64 = HEX32 * 2
GOOD_PNG = png_bytes()


def encoded(fmt: str, **save: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "orange").save(out, fmt, **save)
    return out.getvalue()


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    data_dir: Path


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """One embedded coordinator (MAX_UPLOAD_MB=0.5) shared by this module's requests."""
    data_dir = tmp_path_factory.mktemp("bad-input")
    async with running_app(make_settings(data_dir, max_upload_mb=MAX_UPLOAD_MB)) as app:
        async with asgi_client(app) as client:
            yield Api(app, client, data_dir)


async def assert_refused(api: Api, call: Callable[[], Any], status: int, *phrases: str) -> str:
    """Send a request; it must get `status` with a `{"detail": str}` naming every phrase, and
    leave jobs, blobs, results, workers and the queue exactly as they were."""
    before = await stored(api.client, api.data_dir)
    response = await call()
    assert response.status_code == status, response.text
    detail = detail_of(response)
    for phrase in phrases:
        assert phrase.lower() in detail.lower(), detail
    assert await stored(api.client, api.data_dir) == before
    return detail


# -- uploads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadUpload:
    files: list[tuple[str, tuple[str | None, bytes]]]
    data: dict[str, str] = field(default_factory=dict)


def one(data: bytes, name: str = "photo.png", **form: str) -> BadUpload:
    return BadUpload([("file", (name, data))], form)


BAD_UPLOADS: dict[str, tuple[BadUpload, int, tuple[str, ...]]] = {
    "text file": (
        one(b"hello, I am not a picture\n", "notes.png"),
        415,
        ("notes.png", "not a supported image"),
    ),
    "empty file": (one(b"", "empty.png"), 415, ("empty.png", "empty file")),
    "truncated png": (one(png_bytes(256, 256)[:120]), 415, ("truncated or corrupt",)),
    "truncated jpeg": (one(encoded("JPEG")[:-2], "cut.jpg"), 415, ("cut.jpg", "truncated")),
    "jpeg header only": (one(encoded("JPEG")[:200], "head.jpg"), 415, ("corrupt",)),
    "ico image": (one(encoded("ICO"), "icon.ico"), 415, ("not a supported image",)),
    "ppm image": (one(encoded("PPM"), "raw.ppm"), 415, ("not a supported image",)),
    "pdf document": (
        one(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "doc.pdf"),
        415,
        ("not a supported image",),
    ),
    "svg text": (
        one(b'<svg xmlns="http://www.w3.org/2000/svg"/>', "v.svg"),
        415,
        ("not a supported image",),
    ),
    "png with no pixels": (one(png_claiming(0, 0)), 415, ("not a supported image",)),
    "decompression bomb 30000x30000": (
        one(png_claiming(30_000, 30_000), "bomb.png"),
        413,
        ("bomb.png", "900000000 pixels", "at most 50000000"),
    ),
    "absurd 1x100000000": (one(png_claiming(1, 100_000_000)), 413, ("100000000 pixels",)),
    "absurd 2^31-1 square": (one(png_claiming(2**31 - 1, 2**31 - 1)), 413, ("too large",)),
    "over max_image_pixels": (
        one(png_claiming(60_000, 1_000)),
        413,
        ("60000×1000", "at most 50000000"),
    ),
    "second file bad": (
        BadUpload([("file", ("ok.png", GOOD_PNG)), ("file", ("bad.gif", b"GIF"))]),
        415,
        ("bad.gif",),
    ),
    "unknown op": (
        one(GOOD_PNG, ops="grayscale,sparkle"),
        422,
        ('step 2 "sparkle"', "unknown operation"),
    ),
    "op argument not a number": (
        one(GOOD_PNG, ops="blur:abc"),
        422,
        ('step 1 "blur:abc"', "from 0 to 100"),
    ),
    "op argument out of range": (
        one(GOOD_PNG, ops="grayscale,rotate:999"),
        422,
        ('step 2 "rotate:999"',),
    ),
    "op argument negative": (one(GOOD_PNG, ops="blur:-1"), 422, ('step 1 "blur:-1"',)),
    "op argument nan": (one(GOOD_PNG, ops="brightness:nan"), 422, ('step 1 "brightness:nan"',)),
    "op argument infinite": (one(GOOD_PNG, ops="contrast:1e999"), 422, ("contrast:1e999",)),
    "thumbnail of zero": (one(GOOD_PNG, ops="thumbnail:0"), 422, ('"thumbnail:0"', "whole number")),
    "argument to an op without one": (
        one(GOOD_PNG, ops="grayscale:3"),
        422,
        ("grayscale takes no argument",),
    ),
    "empty step": (one(GOOD_PNG, ops="grayscale,,blur"), 422, ("step 2", "empty step")),
    "blank ops": (one(GOOD_PNG, ops="   "), 422, ("ops is empty",)),
    "too many steps": (one(GOOD_PNG, ops=",".join(["flip"] * 21)), 422, ("at most 20",)),
    "ops too long": (one(GOOD_PNG, ops="grayscale," * 60), 422, ("ops", "500 characters")),
    "copies 0": (one(GOOD_PNG, copies="0"), 422, ("copies", "greater than or equal to 1")),
    "copies 1001": (one(GOOD_PNG, copies="1001"), 422, ("copies", "less than or equal to 1000")),
    "copies abc": (one(GOOD_PNG, copies="abc"), 422, ("copies", "valid integer")),
    "copies negative": (one(GOOD_PNG, copies="-5"), 422, ("copies",)),
    "copies fractional": (one(GOOD_PNG, copies="1.5"), 422, ("copies",)),
    "files times copies over 10000": (
        BadUpload([("file", (f"{i}.png", GOOD_PNG)) for i in range(11)], {"copies": "1000"}),
        422,
        ("at most 10000",),
    ),
    "101 files": (
        BadUpload([("file", (f"{i}.png", GOOD_PNG)) for i in range(101)]),
        422,
        ("at most 100 per upload",),
    ),
    "no file part": (BadUpload([], {"ops": "grayscale"}), 422, ("file", "required")),
    "file sent as a text field": (
        BadUpload([("file", (None, GOOD_PNG))]),
        422,
        ("file", "must be a file part"),
    ),
}


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=str)
async def test_bad_upload_is_refused_and_nothing_is_stored(api: Api, case: str) -> None:
    upload, status, phrases = BAD_UPLOADS[case]

    async def call() -> httpx.Response:
        files = upload.files or None
        return await api.client.post("/upload", files=files, data=upload.data or None)

    await assert_refused(api, call, status, *phrases)


@pytest.mark.parametrize(
    ("content_type", "body", "status", "phrase"),
    [
        ("application/json", b'{"file": "x"}', 422, "file"),
        ("multipart/form-data", b"--x\r\n", 400, "boundary"),
        (
            "multipart/form-data; boundary=zz",
            b"--zz\r\nContent-Disposition: form-data; "
            b'name="file"; filename="a.png"\r\n\r\nno closing boundary',
            422,
            "file",
        ),
    ],
    ids=["json instead of multipart", "multipart without boundary", "multipart cut short"],
)
async def test_malformed_upload_body_is_refused(
    api: Api, content_type: str, body: bytes, status: int, phrase: str
) -> None:
    async def call() -> httpx.Response:
        return await api.client.post(
            "/upload", content=body, headers={"content-type": content_type}
        )

    await assert_refused(api, call, status, phrase)


# -- oversize bodies: 413 before the body is read whole ------------------------------------------


class CountingBody:
    """A multipart upload streamed in 64 KiB chunks, counting how much the server pulled."""

    boundary = "sd-test-boundary"

    def __init__(self, total_bytes: int, *, json_body: bool = False) -> None:
        self.total_bytes = total_bytes
        self.json_body = json_body
        self.pulled = 0

    @property
    def content_type(self) -> str:
        if self.json_body:
            return "application/json"
        return f"multipart/form-data; boundary={self.boundary}"

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.json_body:
            yield b'{"type": "sleep", "payload": {"pad": "'
        else:
            yield (
                f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; '
                'filename="huge.png"\r\nContent-Type: image/png\r\n\r\n'
            ).encode()
        while self.pulled < self.total_bytes:
            self.pulled += CHUNK
            yield b"a" * CHUNK
        yield b'"}}' if self.json_body else f"\r\n--{self.boundary}--\r\n".encode()


@pytest.mark.parametrize(("path", "limit"), [("/upload", UPLOAD_LIMIT), ("/task", JSON_LIMIT)])
async def test_content_length_over_the_limit_gets_413_before_any_body_is_read(
    api: Api, path: str, limit: int
) -> None:
    body = CountingBody(50 * 1024 * 1024, json_body=path == "/task")

    async def call() -> httpx.Response:
        return await api.client.post(
            path,
            content=body.__aiter__(),
            headers={"content-type": body.content_type, "content-length": str(limit + 1)},
        )

    await assert_refused(api, call, 413, "too large", f"{limit / 1048576:.1f} MB")
    assert body.pulled == 0


@pytest.mark.parametrize(("path", "limit"), [("/upload", UPLOAD_LIMIT), ("/task", JSON_LIMIT)])
async def test_chunked_body_over_the_limit_gets_413_as_soon_as_it_crosses_it(
    api: Api, path: str, limit: int
) -> None:
    body = CountingBody(50 * 1024 * 1024, json_body=path == "/task")
    request = api.client.build_request(
        "POST", path, content=body.__aiter__(), headers={"content-type": body.content_type}
    )
    assert "content-length" not in request.headers

    async def call() -> httpx.Response:
        return await api.client.send(request)

    await assert_refused(api, call, 413, "too large")
    assert limit <= body.pulled <= limit + CHUNK


async def test_an_upload_just_over_max_upload_mb_gets_413_and_one_under_it_does_not(
    api: Api,
) -> None:
    over = one(b"x" * (UPLOAD_LIMIT + 1), "big.png")

    async def send(upload: BadUpload) -> httpx.Response:
        return await api.client.post("/upload", files=upload.files)

    await assert_refused(api, lambda: send(over), 413, "0.5 MB")
    # Under the limit the size passes and the content is judged instead.
    await assert_refused(
        api, lambda: send(one(b"x" * (UPLOAD_LIMIT - 1024))), 415, "not a supported"
    )


@pytest.mark.parametrize("path", ["/register", "/report", "/working", "/jobs"])
async def test_json_bodies_over_one_megabyte_get_413_on_every_endpoint(api: Api, path: str) -> None:
    padding = "p" * JSON_LIMIT

    async def call() -> httpx.Response:
        return await api.client.post(path, json={"name": "w", "status": "free", "pad": padding})

    await assert_refused(api, call, 413, "1.0 MB")


async def test_result_headers_over_one_megabyte_in_one_body_get_413(api: Api) -> None:
    # Each header alone is well under the limit; together they pass it.
    outcome = {"task_id": HEX32, "worker": "w1", "output": "p" * (JSON_LIMIT // 3)}

    async def call() -> httpx.Response:
        return await api.client.post("/results", **outcome_frames(outcome, outcome, outcome))

    await assert_refused(api, call, 413, "1.0 MB")


# -- custom tasks -------------------------------------------------------------------------------


def as_json(raw: bytes) -> dict[str, Any]:
    return {"content": raw, "headers": {"content-type": "application/json"}}


BAD_TASKS: dict[str, tuple[dict[str, Any], int, tuple[str, ...]]] = {
    "malformed json": (as_json(b'{"type": "sleep", '), 422, ("not valid JSON",)),
    "truncated json": (as_json(b'{"type": "sle'), 422, ("not valid JSON",)),
    "not json at all": (as_json(b"type=sleep"), 422, ("not valid JSON",)),
    "empty body": (as_json(b""), 422, ("request body is missing",)),
    "json array": ({"json": [{"type": "sleep"}]}, 422, ("must be a JSON object",)),
    "json string": ({"json": "sleep"}, 422, ("must be a JSON object",)),
    "json sent as text/plain": (
        {"content": b'{"type":"sleep"}', "headers": {"content-type": "text/plain"}},
        422,
        ("Content-Type: application/json",),
    ),
    "invalid utf-8": (as_json(b'{"type": "\xff\xfe"}'), 400, ("UTF-8",)),
    "nested too deeply": (as_json(b"[" * 100_000), 400, ("nested too deeply",)),
    "unknown type": (
        {"json": {"type": "mine-bitcoin"}},
        422,
        ("unknown task type 'mine-bitcoin'",),
    ),
    "image type through /task": ({"json": {"type": "image"}}, 422, ("POST /upload",)),
    "missing type": ({"json": {"payload": {}}}, 422, ("type", "required")),
    "empty type": ({"json": {"type": ""}}, 422, ("type",)),
    "type too long": ({"json": {"type": "x" * 65}}, 422, ("type", "64 characters")),
    "type not a string": ({"json": {"type": 7}}, 422, ("type",)),
    "payload not an object": ({"json": {"type": "sleep", "payload": 5}}, 422, ("payload",)),
    "payload value out of range": (
        {"json": {"type": "sleep", "payload": {"seconds": 61}}},
        422,
        ("bad payload for 'sleep'", "seconds"),
    ),
    "payload value negative": (
        {"json": {"type": "sleep", "payload": {"seconds": -1}}},
        422,
        ("seconds",),
    ),
    "payload value wrong type": (
        {"json": {"type": "sleep", "payload": {"seconds": "soon"}}},
        422,
        ("seconds", "valid number"),
    ),
    "payload value NaN": (
        as_json(b'{"type": "sleep", "payload": {"seconds": NaN}}'),
        422,
        ("seconds",),
    ),
    "payload missing field": (
        {"json": {"type": "primes", "payload": {}}},
        422,
        ("bad payload for 'primes'", "below"),
    ),
    "payload unknown field": (
        {"json": {"type": "sleep", "payload": {"seconds": 1, "x": 2}}},
        422,
        ("x", "extra"),
    ),
    "unknown top-level field": (
        {"json": {"type": "sleep", "payload": {"seconds": 0}, "priority": 9}},
        422,
        ("priority",),
    ),
    "copies 0": (
        {"json": {"type": "sleep", "payload": {"seconds": 0}, "copies": 0}},
        422,
        ("copies",),
    ),
    "copies 1001": (
        {"json": {"type": "sleep", "payload": {"seconds": 0}, "copies": 1001}},
        422,
        ("copies",),
    ),
    "copies abc": (
        {"json": {"type": "sleep", "payload": {"seconds": 0}, "copies": "abc"}},
        422,
        ("copies", "valid integer"),
    ),
    "copies huge": (
        {"json": {"type": "sleep", "payload": {"seconds": 0}, "copies": 10**30}},
        422,
        ("copies",),
    ),
}


@pytest.mark.parametrize("case", BAD_TASKS, ids=str)
async def test_bad_task_is_refused_and_nothing_is_queued(api: Api, case: str) -> None:
    request, status, phrases = BAD_TASKS[case]

    async def call() -> httpx.Response:
        return await api.client.post("/task", **request)

    await assert_refused(api, call, status, *phrases)


# -- reading: results, inputs, jobs -------------------------------------------------------------

TRAVERSALS = [
    "/result/../sd.sqlite3",
    "/result/../../../../../etc/passwd",
    "/result/..%2fsd.sqlite3",
    "/result/%2e%2e%2fsd.sqlite3",
    "/result/%2e%2e/sd.sqlite3",
    "/result/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/result/..%5csd.sqlite3",
    "/result//etc/passwd",
    "/result/%2fetc%2fpasswd",
    "/result/sd.sqlite3",
    "/result/..",
    "/result/.",
    "/result/%00",
    f"/result/{HEX32}.PNG",
    f"/result/{HEX32}.png.tmp",
    f"/result/{HEX32[:31]}.png",
    f"/result/{HEX32}0.png",
    f"/result/{HEX32.upper()}.png",
    "/result/not-a-result.png",
    f"/result/{HEX32}.png",  # well-formed but unknown
    "/inputs/../sd.sqlite3",
    "/inputs/%2e%2e%2fsd.sqlite3",
    f"/inputs/{HEX64}",
    f"/inputs/{HEX64[:63]}",
    "/blobs/../sd.sqlite3",
    "/blobs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    f"/blobs/{HEX64}",
    "/assets/../../sd.sqlite3",
    "/assets/%2e%2e%2f%2e%2e%2fapp.py",
    "/../sd.sqlite3",
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_paths_that_are_not_stored_files_get_404_and_reveal_nothing(
    api: Api, path: str
) -> None:
    status, body = await raw_get(api.app, path)
    assert status == 404, body
    detail = detail_of(
        httpx.Response(status, content=body, headers={"content-type": "application/json"})
    )
    assert "SQLite" not in detail and "root:" not in detail
    assert body.startswith(b'{"detail":')


async def test_a_stored_result_is_served_but_its_neighbours_are_not(api: Api) -> None:
    sent = await api.client.post("/upload", files={"file": ("fine.png", GOOD_PNG)})
    assert sent.status_code == 202, sent.text
    job = await wait_job(api.client, sent.json()["job_id"])
    name = job["tasks"][0]["result"]
    assert (await api.client.get(f"/result/{name}")).status_code == 200
    for neighbour in (f"../results/{name}", f"..%2fresults%2f{name}", f"{name}/", f"./{name}"):
        status, _ = await raw_get(api.app, f"/result/{neighbour}")
        assert status == 404, neighbour


@pytest.mark.parametrize("job_id", [HEX32, "nope", "0" * 1000, "%00", "..", "'%3B%20--"])
async def test_unknown_job_ids_get_404(api: Api, job_id: str) -> None:
    status, body = await raw_get(api.app, f"/jobs/{job_id}")
    assert status == 404, body
    assert body.startswith(b'{"detail":"unknown job ')


@pytest.mark.parametrize(
    ("query", "phrase"), [("limit=abc", "limit"), ("limit=1e3", "limit"), ("limit=", "limit")]
)
async def test_bad_job_list_parameters_get_422(api: Api, query: str, phrase: str) -> None:
    response = await api.client.get(f"/jobs?{query}")
    assert response.status_code == 422
    assert phrase in detail_of(response)


# -- worker reports -----------------------------------------------------------------------------


def header(**fields: Any) -> bytes:
    """One frame of a POST /results body holding this JSON header."""
    return framed(json.dumps(fields).encode())


BAD_REPORTS: dict[str, tuple[str, dict[str, Any], int, tuple[str, ...]]] = {
    "register malformed json": ("/register", as_json(b'{"name": "w1"'), 422, ("not valid JSON",)),
    "register not an object": ("/register", {"json": ["w1"]}, 422, ("JSON object",)),
    "register without name": ("/register", {"json": {"cpu": 5}}, 422, ("name", "required")),
    "register name with spaces": (
        "/register",
        {"json": {"name": "two words"}},
        422,
        ("name", "pattern"),
    ),
    "register name with slash": ("/register", {"json": {"name": "../w"}}, 422, ("name",)),
    "register name too long": ("/register", {"json": {"name": "w" * 65}}, 422, ("name",)),
    "register cpu over 100": ("/register", {"json": {"name": "w1", "cpu": 101}}, 422, ("cpu",)),
    "register ram not a number": (
        "/register",
        {"json": {"name": "w1", "ram": "lots"}},
        422,
        ("ram",),
    ),
    "register bad status": (
        "/register",
        {"json": {"name": "w1", "status": "asleep"}},
        422,
        ("status",),
    ),
    "register version too long": (
        "/register",
        {"json": {"name": "w1", "version": "1" * 65}},
        422,
        ("version", "at most 64"),
    ),
    "register os too long": ("/register", {"json": {"name": "w1", "os": "x" * 81}}, 422, ("os",)),
    "report unknown worker": (
        "/report",
        {"json": {"name": "ghost"}},
        404,
        ("'ghost' is not registered",),
    ),
    "report malformed json": ("/report", as_json(b"{"), 422, ("not valid JSON",)),
    "report negative net": ("/report", {"json": {"name": "w1", "net": -1}}, 422, ("net",)),
    "report held not a task id": (
        "/report",
        {"json": {"name": "w1", "held": ["../x"]}},
        422,
        ("held",),
    ),
    "report round trip negative": (
        "/report",
        {"json": {"name": "w1", "rtt_ms": -1}},
        422,
        ("rtt_ms",),
    ),
    "working unknown worker": (
        "/working",
        {"json": {"name": "ghost", "status": "busy"}},
        404,
        ("not registered",),
    ),
    "working without status": ("/working", {"json": {"name": "ghost"}}, 422, ("status",)),
    "working bad status": (
        "/working",
        {"json": {"name": "ghost", "status": "zzz"}},
        422,
        ("status",),
    ),
    "working task id too long": (
        "/working",
        {"json": {"name": "ghost", "status": "busy", "task_id": "t" * 65}},
        422,
        ("task_id",),
    ),
    "results header not json": (
        "/results",
        frames_body(framed(b"hello")),
        422,
        ("bad frame header", "JSON"),
    ),
    "results malformed json header": (
        "/results",
        frames_body(framed(b'{"task_id":')),
        422,
        ("bad frame header", "Invalid JSON"),
    ),
    "results header not an object": (
        "/results",
        frames_body(framed(b'[{"task_id": "x"}]')),
        422,
        ("bad frame header", "object"),
    ),
    "results empty body": ("/results", frames_body(b""), 422, ("no results",)),
    "results random bytes": (
        "/results",
        frames_body(b"\x00\x01garbage"),
        422,
        ("bad result frames",),
    ),
    "results bad task id": (
        "/results",
        frames_body(header(task_id="../x", worker="w1")),
        422,
        ("task_id", "pattern"),
    ),
    "results image bad task id": (
        "/results",
        frames_body(header(task_id="../x", worker="w1", size=0)),
        422,
        ("task_id", "pattern"),
    ),
    "results bad worker": (
        "/results",
        frames_body(header(task_id=HEX32, worker="a b")),
        422,
        ("worker",),
    ),
    "results without task id": (
        "/results",
        frames_body(header(worker="w1")),
        422,
        ("task_id", "required"),
    ),
    "results unknown field": (
        "/results",
        frames_body(header(task_id=HEX32, worker="w1", ok=1)),
        422,
        ("ok", "extra inputs"),
    ),
    "results image with an error": (
        "/results",
        frames_body(
            header(task_id=HEX32, worker="w1", error="boom", size=len(GOOD_PNG)) + GOOD_PNG
        ),
        422,
        ("without error",),
    ),
    "results over 1000 outcomes": (
        "/results",
        frames_body(header(task_id=HEX32, worker="w1") * 1001),
        422,
        ("more than 1000",),
    ),
    "results truncated result": (
        "/results",
        frames_body(header(task_id=HEX32, worker="w1", size=999) + GOOD_PNG),
        422,
        ("truncated result",),
    ),
}


@pytest.mark.parametrize("case", BAD_REPORTS, ids=str)
async def test_bad_worker_report_is_refused_and_changes_nothing(api: Api, case: str) -> None:
    path, request, status, phrases = BAD_REPORTS[case]

    async def call() -> httpx.Response:
        return await api.client.post(path, **request)

    await assert_refused(api, call, status, *phrases)


# A well-formed body whose one outcome is refused: 200, and that outcome's answer refuses it.
BAD_RESULTS: dict[str, tuple[dict[str, Any], int, str]] = {
    "image not a png": ({"image": b"GIF89a not a png"}, 422, "a result image must be a PNG"),
    "image empty": ({"image": b""}, 422, "a result image must be a PNG"),
    "image of an unknown task": ({"image": GOOD_PNG}, 404, f"unknown task {HEX32}"),
    "failure of an unknown task": ({"error": "boom"}, 404, f"unknown task {HEX32}"),
}


@pytest.mark.parametrize("case", BAD_RESULTS, ids=str)
async def test_a_bad_result_is_refused_in_its_answer_and_changes_nothing(
    api: Api, case: str
) -> None:
    fields, status, error = BAD_RESULTS[case]
    before = await stored(api.client, api.data_dir)
    outcome = {"task_id": HEX32, "worker": "w1", **fields}
    response = await api.client.post("/results", **outcome_frames(outcome))
    assert response.status_code == 200, response.text
    assert response.json()["answers"] == [{"task_id": HEX32, "error": error, "status": status}]
    assert await stored(api.client, api.data_dir) == before


async def test_results_batch_answers_404_for_each_unknown_task_and_stores_nothing(
    api: Api,
) -> None:
    before = await stored(api.client, api.data_dir)
    other = uuid.uuid4().hex
    response = await api.client.post(
        "/results",
        **outcome_frames(
            {"task_id": HEX32, "worker": "w1", "output": {"x": 1}},
            {"task_id": other, "worker": "w1", "error": "boom"},
        ),
    )
    assert response.status_code == 200
    answers = response.json()["answers"]
    assert [(a["task_id"], a["status"]) for a in answers] == [(HEX32, 404), (other, 404)]
    assert all(a["error"] == f"unknown task {a['task_id']}" for a in answers)
    assert await stored(api.client, api.data_dir) == before


async def test_result_frames_answer_per_result_for_unknown_tasks_and_non_pngs(api: Api) -> None:
    before = await stored(api.client, api.data_dir)
    other = uuid.uuid4().hex

    def frame(task_id: str, image: bytes) -> bytes:
        header = {"task_id": task_id, "worker": "w1", "size": len(image)}
        return framed(json.dumps(header).encode()) + image

    body = frame(HEX32, GOOD_PNG) + frame(other, b"GIF89a")
    response = await api.client.post("/results", **frames_body(body))
    assert response.status_code == 200
    answers = [(a["task_id"], a["status"], a["error"]) for a in response.json()["answers"]]
    assert answers == [
        (HEX32, 404, f"unknown task {HEX32}"),
        (other, 422, "a result image must be a PNG"),
    ]
    assert await stored(api.client, api.data_dir) == before


async def test_a_second_session_cannot_report_as_a_registered_worker(api: Api) -> None:
    session = (await api.client.post("/register", json={"name": "owner-w"})).json()["session"]
    before = await stored(api.client, api.data_dir)
    intruder = await api.client.post(
        "/report", json={"name": "owner-w", "session": "intruder", "cpu": 99}
    )
    assert intruder.status_code == 404
    assert "registered again elsewhere" in detail_of(intruder)
    assert (await api.client.get("/workers")).json()["owner-w"]["cpu"] == 0
    assert await stored(api.client, api.data_dir) == before
    ok = await api.client.post("/report", json={"name": "owner-w", "session": session, "cpu": 5})
    assert ok.status_code == 200


# -- healthy afterwards -------------------------------------------------------------------------


async def test_the_service_still_completes_a_good_upload_after_every_bad_input(api: Api) -> None:
    for upload, _, _ in BAD_UPLOADS.values():
        await api.client.post("/upload", files=upload.files or None, data=upload.data or None)
    for request, _, _ in BAD_TASKS.values():
        await api.client.post("/task", **request)
    for path, request, _, _ in BAD_REPORTS.values():
        await api.client.post(path, **request)
    for path in TRAVERSALS:
        await raw_get(api.app, path)

    assert (await api.client.get("/health")).json()["status"] == "ok"
    sent = await api.client.post(
        "/upload",
        files={"file": ("after.png", GOOD_PNG)},
        data={"ops": "grayscale,blur:1", "copies": "2"},
    )
    assert sent.status_code == 202, sent.text
    job = await wait_job(api.client, sent.json()["job_id"])
    assert (job["state"], job["done"]) == ("done", 2), job
    for task in job["tasks"]:
        result = await api.client.get(f"/result/{task['result']}")
        assert result.status_code == 200 and result.content.startswith(b"\x89PNG")


# -- with RabbitMQ: nothing reaches the queue -----------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def queued(tmp_path_factory: pytest.TempPathFactory, rabbitmq: None) -> AsyncIterator[Api]:
    """A coordinator on the real broker with a unique queue and no worker: tasks stay queued."""
    data_dir = tmp_path_factory.mktemp("bad-input-rabbit")
    queue = unique_queue()
    settings = make_settings(
        data_dir,
        rabbit_host="127.0.0.1",
        queue_name=queue,
        cluster_token="tok",
        max_upload_mb=MAX_UPLOAD_MB,
    )
    try:
        async with running_app(settings) as app:
            async with asgi_client(app, authorization="Bearer tok") as client:
                yield Api(app, client, data_dir)
    finally:
        await delete_queues(queue)


async def pending_after_cache(client: httpx.AsyncClient) -> int:
    await asyncio.sleep(0.6)  # the coordinator caches the queue depth for half a second
    return int((await client.get("/queue_size")).json()["pending_tasks"])


async def test_bad_input_enqueues_nothing_on_rabbitmq_and_a_good_upload_does(queued: Api) -> None:
    assert await pending_after_cache(queued.client) == 0
    for name, (upload, status, _) in BAD_UPLOADS.items():
        response = await queued.client.post(
            "/upload", files=upload.files or None, data=upload.data or None
        )
        assert response.status_code == status, (name, response.text)
    for name, (request, status, _) in BAD_TASKS.items():
        response = await queued.client.post("/task", **request)
        assert response.status_code == status, (name, response.text)
    assert await pending_after_cache(queued.client) == 0
    assert (await queued.client.get("/jobs")).json() == []
    assert not any((queued.data_dir / "blobs").rglob("*.*"))

    sent = await queued.client.post("/upload", files={"file": ("ok.png", GOOD_PNG)})
    assert sent.status_code == 202, sent.text
    assert await pending_after_cache(queued.client) == 1


async def test_a_non_png_result_for_a_queued_task_stores_nothing(queued: Api) -> None:
    sent = await queued.client.post("/task", json={"type": "sleep", "payload": {"seconds": 0}})
    assert sent.status_code == 202, sent.text
    job_id = sent.json()["job_id"]
    task_id = (await queued.client.get(f"/jobs/{job_id}")).json()["tasks"][0]["task_id"]

    for body in (b"", b"GIF89a", b"\x89PNX\r\n\x1a\n", b"<html>"):
        outcome = {"task_id": task_id, "worker": "w1", "image": body}
        response = await queued.client.post("/results", **outcome_frames(outcome))
        assert response.status_code == 200
        (answer,) = response.json()["answers"]
        assert (answer["status"], answer["error"]) == (422, "a result image must be a PNG")
    assert list((queued.data_dir / "results").iterdir()) == []
    job = (await queued.client.get(f"/jobs/{job_id}")).json()
    assert (job["state"], job["tasks"][0]["state"]) == ("queued", "queued")


# -- over a real socket --------------------------------------------------------------------------


def read_response(sock: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length, read whole."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096) or b"\r\n\r\n"
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        more = sock.recv(4096)
        if not more:
            break
        body += more
    return head + b"\r\n\r\n" + body


@pytest.mark.e2e
async def test_a_real_server_answers_413_without_waiting_for_the_body(
    embedded_cluster: Cluster,
) -> None:
    embedded_cluster.start_coordinator(MAX_UPLOAD_MB=str(MAX_UPLOAD_MB))
    announced = 200 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", embedded_cluster.port), timeout=10) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + embedded_cluster.token.encode()
            + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: "
            + str(announced).encode()
            + b"\r\n\r\n"
            + b"a" * CHUNK
        )
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b'"detail":"request body too large' in answer

    sent = 0
    with socket.create_connection(("127.0.0.1", embedded_cluster.port), timeout=10) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + embedded_cluster.token.encode()
            + b"\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            + b"Transfer-Encoding: chunked\r\n\r\n"
        )
        preamble = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'
        sock.sendall(f"{len(preamble):x}\r\n".encode() + preamble + b"\r\n")
        chunk = f"{CHUNK:x}\r\n".encode() + b"a" * CHUNK + b"\r\n"
        while sent < announced and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += CHUNK
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert sent < announced / 4  # it answered long before the client could send everything


async def test_the_openapi_page_documents_the_error_answers_of_the_routes_that_store_work(
    api: Api,
) -> None:
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    files = paths["/jobs/{job_id}/files"]["post"]["responses"]
    assert {"400", "404", "409", "413", "503", "507"} <= set(files)
    upload = paths["/upload"]["post"]["responses"]
    assert "disk is full" in upload["507"]["description"]
    problem = upload["422"]["content"]["application/json"]["schema"]["$ref"]
    assert problem.endswith("/Problem")  # {"detail": str}, as every error answer is
