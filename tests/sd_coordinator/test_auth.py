"""Who may call what: CLUSTER_TOKEN on worker endpoints, the optional API_TOKEN on the user API,
the startup refusal, worker-name ownership and CORS."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from sd_coordinator.app import STATIC_DIR
from support.api import (
    asgi_client,
    detail_of,
    framed,
    make_settings,
    outcome_frames,
    png_bytes,
    running_app,
    wait_job,
)
from support.cluster import console_script, free_port

CLUSTER = "cluster-secret"
API = "api-secret"
HEX32 = "ab" * 16
HEX64 = "cd" * 32


@pytest_asyncio.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A coordinator with both tokens set, and a client that sends none."""
    settings = make_settings(tmp_path, cluster_token=CLUSTER, api_token=API)
    async with running_app(settings) as app:
        async with asgi_client(app) as client:
            yield app, client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# -- worker endpoints: CLUSTER_TOKEN -------------------------------------------------------------

WORKER_CALLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "register": ("POST", "/register", {"json": {"name": "w1"}}),
    "report": ("POST", "/report", {"json": {"name": "w1"}}),
    "working": ("POST", "/working", {"json": {"name": "w1", "status": "busy"}}),
    "blobs": ("GET", f"/blobs/{HEX64}", {}),
    "results image": (
        "POST",
        "/results",
        {
            "content": outcome_frames({"task_id": HEX32, "worker": "w1", "image": png_bytes()})[
                "content"
            ]
        },
    ),
    "results outcome": (
        "POST",
        "/results",
        {"content": outcome_frames({"task_id": HEX32, "worker": "w1"})["content"]},
    ),
    "results malformed": ("POST", "/results", {"content": b"\x00\x00\x00\x02{}"}),
    "whoami": ("GET", "/whoami", {"params": {"name": "w1"}}),
}

WRONG_CREDENTIALS: dict[str, dict[str, str]] = {
    "no header": {},
    "wrong token": bearer("not-the-token"),
    "token with a suffix": bearer(CLUSTER + "x"),
    "token prefix": bearer(CLUSTER[:-1]),
    "empty bearer": {"authorization": "Bearer "},
    "basic scheme": {"authorization": f"Basic {CLUSTER}"},
    "token scheme": {"authorization": f"Token {CLUSTER}"},
    "bare token": {"authorization": CLUSTER},
    "the api token": bearer(API),
    "token in another header": {"x-cluster-token": CLUSTER},
}


@pytest.mark.parametrize("credentials", WRONG_CREDENTIALS, ids=str)
@pytest.mark.parametrize("endpoint", WORKER_CALLS, ids=str)
async def test_worker_endpoints_answer_401_without_the_cluster_token(
    guarded: tuple[FastAPI, httpx.AsyncClient], endpoint: str, credentials: str
) -> None:
    _, client = guarded
    method, path, request = WORKER_CALLS[endpoint]
    response = await client.request(method, path, headers=WRONG_CREDENTIALS[credentials], **request)
    assert response.status_code == 401, response.text
    assert "CLUSTER_TOKEN" in detail_of(response)
    assert "w1" not in (await client.get("/workers", headers=bearer(API))).json()


@pytest.mark.parametrize("endpoint", WORKER_CALLS, ids=str)
async def test_worker_endpoints_accept_the_cluster_token(
    guarded: tuple[FastAPI, httpx.AsyncClient], endpoint: str
) -> None:
    _, client = guarded
    method, path, request = WORKER_CALLS[endpoint]
    if endpoint in ("report", "working"):
        await client.post(
            "/register", json={"name": "w1", "session": "s1"}, headers=bearer(CLUSTER)
        )
        request = {"json": {**request["json"], "session": "s1"}}
    response = await client.request(method, path, headers=bearer(CLUSTER), **request)
    # Past the gate: success, or the endpoint's own answer for an unknown blob/task or a bad body.
    assert response.status_code in (200, 404, 422), response.text
    if response.status_code != 200:
        assert any(known in response.text for known in ("unknown task", "no input", "frame"))


async def test_a_bad_body_without_the_token_gets_401_not_a_validation_error(
    guarded: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = guarded
    response = await client.post(
        "/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 401


# A body each endpoint reads to its end: a file of zeros as an upload, or as a result image.
OPENINGS = {
    "/upload": b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n',
    "/results": framed(f'{{"task_id": "{HEX32}", "worker": "w1", "size": {100 * 65536}}}'.encode()),
}


@pytest.mark.parametrize(("path", "token"), [("/upload", API), ("/results", CLUSTER)])
async def test_a_caller_without_the_token_gets_401_before_its_body_is_read(
    guarded: tuple[FastAPI, httpx.AsyncClient], path: str, token: str
) -> None:
    _, client = guarded
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield OPENINGS[path]
        for _ in range(100):
            pulled += 1
            yield b"\x00" * 65536
        if path == "/upload":
            yield b"\r\n--b--\r\n"

    headers = {"content-type": "multipart/form-data; boundary=b"}
    response = await client.post(path, content=body(), headers=headers)
    assert response.status_code == 401
    assert pulled == 0
    # With the token the same body is read (and judged on its content).
    response = await client.post(path, content=body(), headers=headers | bearer(token))
    assert pulled == 100
    if path == "/results":
        assert response.status_code == 200, response.text
        assert response.json()["answers"][0]["error"] == "a result image must be a PNG"
    else:
        assert response.status_code in (415, 422)


async def test_a_worker_with_the_token_fetches_an_input_by_hash(
    guarded: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = guarded
    image = png_bytes(20, 20)
    sent = await client.post("/upload", files={"file": ("a.png", image)}, headers=bearer(API))
    assert sent.status_code == 202
    sha = hashlib.sha256(image).hexdigest()
    assert (await client.get(f"/blobs/{sha}")).status_code == 401
    fetched = await client.get(f"/blobs/{sha}", headers=bearer(CLUSTER))
    assert fetched.status_code == 200 and fetched.content == image


async def test_without_a_cluster_token_worker_endpoints_are_open_only_on_loopback(
    tmp_path: Path,
) -> None:
    async with running_app(make_settings(tmp_path / "lo")) as app, asgi_client(app) as client:
        assert (await client.post("/register", json={"name": "w1"})).status_code == 200

    exposed = make_settings(tmp_path / "any", coordinator_bind="0.0.0.0")
    async with running_app(exposed) as app, asgi_client(app) as client:
        for method, path, request in WORKER_CALLS.values():
            response = await client.request(method, path, **request)
            assert response.status_code == 403, (path, response.text)
            assert "set CLUSTER_TOKEN" in detail_of(response)
        assert (await client.get("/workers")).json().get("w1") is None


# -- startup refusal -----------------------------------------------------------------------------


def run_coordinator(
    tmp_path: Path, args: list[str], **env: str
) -> subprocess.CompletedProcess[str]:
    unset = ("CLUSTER_TOKEN", "API_TOKEN", "RABBIT_HOST", "COORDINATOR_BIND")
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [console_script("sd-coordinator"), "--port", str(free_port()), *args],
        env={**clean, "DATA_DIR": str(tmp_path / "data"), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--host", "0.0.0.0"], {}),
        ([], {}),  # with RabbitMQ the default listen address is 0.0.0.0
        (["--host", "192.0.2.10"], {}),
        (["--host", "::"], {}),
        ([], {"COORDINATOR_BIND": "0.0.0.0"}),
        (["--host", "0.0.0.0"], {"CLUSTER_TOKEN": "   "}),
    ],
    ids=[
        "--host 0.0.0.0",
        "default host",
        "a lan address",
        "ipv6 any",
        "COORDINATOR_BIND",
        "blank token",
    ],
)
def test_a_coordinator_exposed_with_rabbitmq_and_no_token_refuses_to_start(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    done = run_coordinator(tmp_path, args, RABBIT_HOST="127.0.0.1", **env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "CLUSTER_TOKEN" in lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""


def serves(tmp_path: Path, args: list[str], **env: str) -> bool:
    """Start sd-coordinator, report whether /openapi.json answered within 30 s, stop it."""
    port = free_port()
    tmp_path.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if k not in ("CLUSTER_TOKEN", "API_TOKEN")}
    proc = subprocess.Popen(
        [console_script("sd-coordinator"), "--port", str(port), *args],
        env={**clean, "DATA_DIR": str(tmp_path / "data"), **env},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2).is_success
            except httpx.HTTPError:
                time.sleep(0.2)
        return False
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_same_coordinator_starts_on_loopback_or_with_a_token(
    tmp_path: Path, queue_name: str
) -> None:
    rabbit = {"RABBIT_HOST": "127.0.0.1", "QUEUE_NAME": queue_name}
    assert serves(tmp_path / "loopback", ["--host", "127.0.0.1"], **rabbit)
    assert serves(tmp_path / "token", ["--host", "0.0.0.0"], CLUSTER_TOKEN="t", **rabbit)


# -- user API: API_TOKEN -------------------------------------------------------------------------

USER_CALLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "upload": ("POST", "/upload", {"files": {"file": ("a.png", png_bytes())}}),
    "task": ("POST", "/task", {"json": {"type": "sleep", "payload": {"seconds": 0}}}),
    "jobs": ("GET", "/jobs", {}),
    "job": ("GET", f"/jobs/{HEX32}", {}),
    "workers": ("GET", "/workers", {}),
    "queue_size": ("GET", "/queue_size", {}),
    "tps": ("GET", "/tps", {}),
    "result": ("GET", f"/result/{HEX32}.png", {}),
    "inputs": ("GET", f"/inputs/{HEX64}", {}),
    "ops": ("GET", "/ops", {}),
    "task-types": ("GET", "/task-types", {}),
    "health": ("GET", "/health", {}),
    "events": ("GET", "/events", {}),
}


@pytest.mark.parametrize(
    "credentials", ["no header", "wrong token", "basic scheme", "empty bearer"]
)
@pytest.mark.parametrize("endpoint", USER_CALLS, ids=str)
async def test_user_api_answers_401_without_the_api_token(
    guarded: tuple[FastAPI, httpx.AsyncClient], endpoint: str, credentials: str
) -> None:
    _, client = guarded
    method, path, request = USER_CALLS[endpoint]
    response = await client.request(method, path, headers=WRONG_CREDENTIALS[credentials], **request)
    assert response.status_code == 401, response.text
    assert "API_TOKEN" in detail_of(response)
    assert (await client.get("/jobs", headers=bearer(API))).json() == []


# Where a browser cannot send a header, the token may come in the query (test_query_tokens).
QUERY_TOKEN_OK = {"result", "inputs"}


@pytest.mark.parametrize("endpoint", [e for e in USER_CALLS if e != "events"], ids=str)
@pytest.mark.parametrize("how", ["header", "query", "cluster token"])
async def test_user_api_works_with_the_api_token(
    guarded: tuple[FastAPI, httpx.AsyncClient], endpoint: str, how: str
) -> None:
    _, client = guarded
    method, path, request = USER_CALLS[endpoint]
    if how == "query":
        request = {**request, "params": {"token": API}}
    headers = {"header": bearer(API), "query": {}, "cluster token": bearer(CLUSTER)}[how]
    response = await client.request(method, path, headers=headers, **request)
    if how == "query" and endpoint not in QUERY_TOKEN_OK:
        assert response.status_code == 401, response.text
        return
    assert response.status_code != 401, response.text
    assert response.status_code in (200, 202, 404), response.text


async def first_event(app: FastAPI, query: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """Open /events in-process and return its status and first body chunk, then hang up."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/events",
        "raw_path": b"/events",
        "root_path": "",
        "query_string": query.encode(),
        "server": ("localhost", 80),
        "client": ("127.0.0.1", 50000),
        "headers": [(b"host", b"localhost")]
        + [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    got: dict[str, Any] = {"status": 0, "body": b""}
    first = asyncio.Event()
    hang_up = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if not got.get("asked"):
            got["asked"] = True
            return {"type": "http.request", "body": b""}
        await hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            got["status"] = message["status"]
        elif message["type"] == "http.response.body":
            got["body"] += message.get("body", b"")
            if b"event: snapshot" in got["body"] or not message.get("more_body"):
                first.set()

    task = asyncio.create_task(app(scope, receive, send))
    try:
        await asyncio.wait_for(first.wait(), 10)
    finally:
        hang_up.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return got["status"], got["body"]


async def test_the_event_stream_needs_the_api_token_in_the_header_or_the_query(
    guarded: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, _ = guarded
    status, body = await first_event(app, "", {})
    assert status == 401 and b"API_TOKEN" in body
    status, body = await first_event(app, "token=wrong", {})
    assert status == 401
    for query, headers in ((f"token={API}", {}), ("", bearer(API))):
        status, body = await first_event(app, query, headers)
        assert status == 200 and b"event: snapshot" in body


async def test_the_dashboard_page_and_its_files_stay_public(
    guarded: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = guarded
    page = await client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assets = (
        sorted((STATIC_DIR / "assets").glob("*")) if (STATIC_DIR / "index.html").is_file() else []
    )
    for asset in assets[:3]:
        response = await client.get(f"/assets/{asset.name}")
        assert response.status_code == 200, asset.name
    assert (await client.get("/jobs")).status_code == 401


async def test_a_full_job_works_end_to_end_with_the_api_token(
    guarded: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = guarded
    client.headers.update(bearer(API))
    sent = await client.post("/upload", files={"file": ("a.png", png_bytes())})
    assert sent.status_code == 202
    job = await wait_job(client, sent.json()["job_id"])
    assert job["state"] == "done"
    result = await client.get(f"/result/{job['tasks'][0]['result']}")
    assert result.status_code == 200
    client.headers.pop("authorization")
    assert (await client.get(f"/result/{job['tasks'][0]['result']}")).status_code == 401


# -- worker names --------------------------------------------------------------------------------


async def test_a_second_node_cannot_take_over_a_live_workers_name(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as app, asgi_client(app) as client:
        first = await client.post(
            "/register", json={"name": "alfa", "session": "A", "ip": "10.0.0.1"}
        )
        assert first.status_code == 200 and first.json()["session"] == "A"

        await asyncio.sleep(2.0)  # silent, but not for 3 report intervals yet
        for session in ("B", None):
            other = await client.post("/register", json={"name": "alfa", "session": session})
            assert other.status_code == 409, other.text
            assert "'alfa' is in use" in detail_of(other)
        assert (await client.post("/register", json={"name": "alfa", "session": "A"})).is_success

        await asyncio.sleep(3.2)  # now silent for more than 3 s
        taken = await client.post(
            "/register", json={"name": "alfa", "session": "B", "ip": "10.0.0.2"}
        )
        assert taken.status_code == 200, taken.text
        assert (await client.get("/workers")).json()["alfa"]["ip"] == "10.0.0.2"
        late = await client.post("/report", json={"name": "alfa", "session": "A"})
        assert late.status_code == 404


# -- CORS ----------------------------------------------------------------------------------------


async def cors_answers(tmp_path: Path, origins: list[str], origin: str) -> list[httpx.Response]:
    async with running_app(make_settings(tmp_path, cors_origins=origins)) as app:
        async with asgi_client(app) as client:
            simple = await client.get("/jobs", headers={"origin": origin})
            preflight = await client.options(
                "/upload",
                headers={
                    "origin": origin,
                    "access-control-request-method": "POST",
                    "access-control-request-headers": "authorization",
                },
            )
            return [simple, preflight]


async def test_cors_is_closed_by_default(tmp_path: Path) -> None:
    for response in await cors_answers(tmp_path, [], "http://evil.example"):
        assert "access-control-allow-origin" not in response.headers


async def test_cors_is_open_only_to_the_configured_origins(tmp_path: Path) -> None:
    allowed = "http://dashboard.example:5173"
    simple, preflight = await cors_answers(tmp_path / "a", [allowed], allowed)
    assert simple.headers["access-control-allow-origin"] == allowed
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()

    for response in await cors_answers(tmp_path / "b", [allowed], "http://evil.example"):
        assert "access-control-allow-origin" not in response.headers


async def test_an_allowed_origin_may_edit_academic_records_with_their_etag(tmp_path: Path) -> None:
    allowed = "http://dashboard.example:5173"
    async with running_app(make_settings(tmp_path, cors_origins=[allowed])) as app:
        async with asgi_client(app) as client:
            for method in ("PUT", "PATCH", "DELETE"):
                preflight = await client.options(
                    "/profesores/1",
                    headers={
                        "origin": allowed,
                        "access-control-request-method": method,
                        "access-control-request-headers": "if-match,content-type",
                    },
                )
                assert preflight.status_code == 200, (method, preflight.text)
                assert method in preflight.headers["access-control-allow-methods"]
                assert "if-match" in preflight.headers["access-control-allow-headers"].lower()
            read = await client.get("/profesores", headers={"origin": allowed})
            assert "etag" in read.headers["access-control-expose-headers"].lower()


def test_a_data_dir_that_cannot_be_a_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    done = run_coordinator(tmp_path, [], DATA_DIR=str(tmp_path / "a-file" / "data"))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot use DATA_DIR {tmp_path / 'a-file' / 'data'}"), last


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("sd.sqlite3", "the coordinator's database"),
        ("academico.sqlite3", "the academic records' database"),
    ],
)
def test_a_damaged_database_is_one_line_and_left_as_it_is(
    tmp_path: Path, name: str, what: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    damaged = b"this is no SQLite database" * 100
    (data / name).write_bytes(damaged)
    done = run_coordinator(tmp_path, [], DATA_DIR=str(data))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot read {what} {data / name} (file is not"), last
    assert "Restore it from a backup, or move it away" in last
    assert (data / name).read_bytes() == damaged


def test_an_address_this_machine_does_not_have_is_named_as_such(tmp_path: Path) -> None:
    done = run_coordinator(tmp_path, ["--host", "192.0.2.10"])
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "192.0.2.10 is not an address of this machine" in done.stderr, done.stderr


def test_a_port_in_use_asks_for_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = run_coordinator(tmp_path, ["--host", "127.0.0.1", "--port", str(port)])
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr, done.stderr
    assert "is another sd-coordinator running? Choose another port with --port" in done.stderr
