"""An asyncio client of the coordinator's user API: jobs that grow, results as they finish."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from sd_common import result_frames
from sd_common.result_names import result_relpath

FINISHED_STATES = frozenset({"done", "failed", "cancelled"})
# Room left in a batch for the multipart framing of each part.
PART_OVERHEAD = 512
# Finished tasks asked for at once, with their result images (GET /jobs/{id}/results).
RESULTS_PAGE = 200
# The longest the coordinator holds a results request while nothing finishes (a long poll).
RESULTS_WAIT_S = 2.0  # short: a coordinator that stops waits for the requests it holds
RESULTS_WAIT_SLACK_S = 30.0  # beyond it, before a silent answer counts as lost
# Files in a job's first batch; each next batch may hold twice as many (`batch_files`).
FIRST_BATCH_FILES = 8


class SdError(Exception):
    """The coordinator answered an error: `status` and its `detail` sentence."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Job:
    """A job's summary."""

    job_id: str
    state: str
    total: int
    done: int
    failed: int
    cancelled: int
    open: bool
    ops: str
    copies: int
    max_upload_bytes: int = 0
    max_files: int = 100

    @property
    def finished(self) -> bool:
        """Done, failed or cancelled: nothing more will change."""
        return self.state in FINISHED_STATES

    @classmethod
    def of(cls, body: dict[str, Any]) -> Job:
        return cls(
            job_id=body["job_id"],
            state=body["state"],
            total=body["total"],
            done=body["done"],
            failed=body["failed"],
            cancelled=body.get("cancelled", 0),
            open=body.get("open", False),
            ops=body.get("ops", ""),
            copies=body.get("copies", 1),
            max_upload_bytes=body.get("max_upload_bytes", 0),
            max_files=body.get("max_files", 100),
        )


@dataclass(frozen=True)
class Task:
    """One task of a job: the file name it was sent under, its state, result and error."""

    task_id: str
    state: str
    filename: str | None
    copy: int
    result: str | None
    error: str | None
    output: Any
    finished_seq: int | None

    @property
    def result_path(self) -> str:
        """Where its result goes in a folder: `trip/day1/a.jpg` → `trip/day1/a.png`."""
        return result_relpath(self.filename or "result", self.copy)

    @classmethod
    def of(cls, body: dict[str, Any]) -> Task:
        return cls(
            task_id=body["task_id"],
            state=body["state"],
            filename=body.get("filename"),
            copy=body.get("copy", 0),
            result=body.get("result"),
            error=body.get("error"),
            output=body.get("output"),
            finished_seq=body.get("finished_seq"),
        )


@dataclass(frozen=True)
class FileAnswer:
    """What the coordinator did with one file of a batch: `queued`, `duplicate` (already in
    the job) or `rejected` (with `detail`)."""

    name: str
    status: str
    tasks: int
    detail: str | None = None


@dataclass
class Batch:
    """Files to send together: `(name, bytes)` pairs."""

    files: list[tuple[str, bytes]] = field(default_factory=list)


class Client:
    """`async with Client(url, token) as sd:` — every call raises SdError on an error answer."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        *,
        timeout_s: float = 300,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        return self._session

    async def close(self) -> None:
        """Close the connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.session.request(method, self.url + path, **kwargs) as response:
            if response.status >= 400:
                raise SdError(response.status, await _detail(response))
            return await response.json()

    # -- jobs -------------------------------------------------------------------------------

    async def create_job(self, ops: str = "grayscale", copies: int = 1, name: str = "") -> Job:
        """An open job that takes files with `add_files` until `close_job`."""
        body = {"ops": ops, "copies": copies, "name": name}
        return Job.of(await self._call("POST", "/jobs", json=body))

    async def add_files(self, job_id: str, files: Sequence[tuple[str, bytes]]) -> list[FileAnswer]:
        """Send `(name, bytes)` files into an open job; one answer per file."""
        form = aiohttp.FormData(quote_fields=False)
        for name, data in files:
            form.add_field("file", data, filename=name, content_type="application/octet-stream")
        body = await self._call("POST", f"/jobs/{job_id}/files", data=form)
        return [
            FileAnswer(f["name"], f["status"], f["tasks"], f.get("detail")) for f in body["files"]
        ]

    async def close_job(self, job_id: str) -> Job:
        """No more files: the job finishes once its tasks do."""
        return Job.of(await self._call("POST", f"/jobs/{job_id}/close"))

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job: queued tasks are not processed; results already made are kept."""
        return Job.of(await self._call("POST", f"/jobs/{job_id}/cancel"))

    async def job(self, job_id: str) -> Job:
        """The job's summary."""
        return Job.of(await self._call("GET", f"/jobs/{job_id}", params={"limit": 0}))

    async def tasks(self, job_id: str, state: str | None = None) -> AsyncIterator[Task]:
        """Every task of the job in order, fetched a page at a time."""
        cursor: int | None = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if state is not None:
                params["state"] = state
            if cursor is not None:
                params["cursor"] = cursor
            page = await self._call("GET", f"/jobs/{job_id}/tasks", params=params)
            for body in page["tasks"]:
                yield Task.of(body)
            cursor = page["next"]
            if cursor is None:
                return

    async def finished(self, job_id: str, poll_s: float = 0.5) -> AsyncIterator[Task]:
        """Tasks as they finish (done or failed), until the job has finished."""
        cursor = 0
        while True:
            job = await self.job(job_id)  # read first: tasks finished before it are listed
            while True:
                page = await self._call(
                    "GET",
                    f"/jobs/{job_id}/tasks",
                    params={"order": "finished", "cursor": cursor, "limit": 1000},
                )
                for body in page["tasks"]:
                    yield Task.of(body)
                cursor = page["next"]
                if len(page["tasks"]) < 1000:
                    break
            if job.finished:
                return
            await asyncio.sleep(poll_s)

    async def finished_results(
        self, job_id: str, poll_s: float = RESULTS_WAIT_S
    ) -> AsyncIterator[tuple[Task, bytes | None]]:
        """Tasks as they finish, each done one with its result image (None for the others),
        many in one request, until the job has finished. While nothing new has finished, the
        coordinator holds each request (up to `poll_s`), so results come as they are stored."""
        cursor = 0
        while True:
            job = await self.job(job_id)  # read first: tasks finished before it are sent
            count, wait = 0, 0.0 if job.finished else poll_s
            async for task, png in self._results_page(job_id, cursor, wait):
                count += 1
                cursor = task.finished_seq or cursor
                yield task, png
            if job.finished and not count:
                return

    async def _results_page(
        self, job_id: str, cursor: int, wait: float = 0
    ) -> AsyncIterator[tuple[Task, bytes | None]]:
        """One GET /jobs/{id}/results: the tasks finished after `cursor`, with their images;
        with `wait`, the coordinator answers once one has (or the job has finished)."""
        url = f"{self.url}/jobs/{job_id}/results"
        params = {"cursor": cursor, "limit": RESULTS_PAGE, "wait": wait}
        timeout = aiohttp.ClientTimeout(sock_read=wait + RESULTS_WAIT_SLACK_S) if wait else None
        async with self.session.get(url, params=params, timeout=timeout) as response:
            if response.status >= 400:
                raise SdError(response.status, await _detail(response))
            body = response.content
            while True:
                try:
                    head = await body.readexactly(result_frames.LENGTH.size)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        raise SdError(502, "the results answer ended inside a frame") from None
                    return
                (length,) = result_frames.LENGTH.unpack(head)
                fields = orjson.loads(await body.readexactly(length))
                size = fields.pop("size", None)
                png = await body.readexactly(size) if size is not None else None
                yield Task.of(fields), png

    async def wait(self, job_id: str, poll_s: float = 0.5) -> Job:
        """Wait until the job is done, failed or cancelled."""
        while True:  # polling: the API has no push for one job
            job = await self.job(job_id)
            if job.finished:
                return job
            await asyncio.sleep(poll_s)

    async def result(self, task: Task) -> bytes:
        """A done task's result image (PNG bytes)."""
        if task.result is None:
            raise SdError(404, f"task {task.task_id} has no result ({task.state})")
        async with self.session.get(f"{self.url}/result/{task.result}") as response:
            if response.status >= 400:
                raise SdError(response.status, await _detail(response))
            return await response.read()

    async def save_result(self, task: Task, folder: str | Path) -> Path:
        """Write a done task's result into `folder` under its relative path, atomically."""
        target = Path(folder) / task.result_path
        data = await self.result(task)
        await asyncio.to_thread(write_atomic, target, data)
        return target

    # -- in one call ------------------------------------------------------------------------

    async def submit(
        self,
        items: Iterable[str | Path | tuple[str, bytes]],
        ops: str = "grayscale",
        copies: int = 1,
        name: str = "",
    ) -> tuple[Job, list[FileAnswer]]:
        """Create a job, send paths (named by their file name) or `(name, bytes)` in batches
        within the coordinator's limits, close it; the job and an answer per file."""
        job = await self.create_job(ops, copies, name)
        answers: list[FileAnswer] = []
        batch: list[tuple[str, bytes]] = []
        size = 0
        sent = 0
        for item in items:
            if isinstance(item, tuple):
                file_name, data = item
            else:
                path = Path(item)
                file_name, data = path.name, await asyncio.to_thread(path.read_bytes)
            cost = len(data) + len(file_name.encode()) + PART_OVERHEAD
            full = len(batch) >= batch_files(sent, job.max_files)
            if batch and (size + cost > job.max_upload_bytes or full):
                answers += await self.add_files(job.job_id, batch)
                sent += 1
                batch, size = [], 0
            batch.append((file_name, data))
            size += cost
        if batch:
            answers += await self.add_files(job.job_id, batch)
        return await self.close_job(job.job_id), answers

    async def download(self, job_id: str, folder: str | Path) -> list[Path]:
        """Write every result into `folder` as it finishes (relative paths kept); the files."""
        written = []
        async for task, png in self.finished_results(job_id):
            if png is not None:
                target = Path(folder) / task.result_path
                await asyncio.to_thread(write_atomic, target, png)
                written.append(target)
        return written


def batch_files(sent: int, max_files: int) -> int:
    """Files in the next batch once `sent` batches went: FIRST_BATCH_FILES, doubling up to the
    coordinator's `max_files`. Workers start on a job's first photos while the later, larger
    batches upload, instead of after a whole batch of 100 was sent, checked and stored."""
    return min(max_files, FIRST_BATCH_FILES << min(sent, 16))


def write_atomic(target: Path, data: bytes) -> None:
    """Write `target` whole or not at all (a temporary file renamed into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    with open(partial, "wb") as f:
        f.write(data)
    os.replace(partial, target)


async def _detail(response: aiohttp.ClientResponse) -> str:
    try:
        body = await response.json(content_type=None)
        return str(body.get("detail", body)) if isinstance(body, dict) else str(body)
    except (ValueError, aiohttp.ContentTypeError):
        return (await response.text())[:500] or response.reason or "error"
