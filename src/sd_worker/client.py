"""HTTP calls from a worker to the coordinator, with retry while it is away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import aiohttp
import orjson

from sd_common import result_frames
from sd_common.backoff import compute_backoff
from sd_common.messages import (
    IngestAnswer,
    OutcomeBatch,
    ReportAnswer,
    TaskOutcome,
    WorkerHello,
    Working,
)
from sd_common.result_frames import ResultHeader
from sd_common.settings import Settings

log = logging.getLogger("sd.worker.client")

# Retries while the coordinator is away: 0.2 s, 0.5 s, 1.25 s, 3.1 s, then every 5 s, ±20 %.
RETRY_BACKOFF = {"base_s": 0.2, "factor": 2.5, "cap_s": 5.0, "jitter": 0.2}
OUTCOME_BATCH_MAX = 200
IMAGE_BATCH_MAX = 64
IMAGE_BATCH_BYTES = 32 * 1024 * 1024
# A request costs the coordinator about as much as storing a dozen results, so while more
# results are on their way a batch waits up to LINGER_S to fill up; a lone task never waits.
# Long tasks (a 1080p image: ~50 ms a core) need the longer wait to share a request at all:
# at 0.5 s a 1080p job's results travel about ten to a request (and ten to an ack).
# A waiting result still holds its delivery's prefetch slot (it is acked once stored), so a
# batch never waits while the pool has fewer tasks left than it can hold: the slots it would
# keep are the ones that bring the pool its next tasks.
LINGER_S = 0.5
LINGER_UNTIL = 32

# A report stuck on a cut link must not hold up the next ones (the default allows 120 s).
REPORT_TIMEOUT = aiohttp.ClientTimeout(total=5, connect=3)

PendingImage = tuple[ResultHeader, bytes, "asyncio.Future[IngestAnswer]"]


class CoordinatorRejected(Exception):
    """The coordinator answered 4xx: retrying the same request cannot help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class CoordinatorClient:
    """aiohttp session to the coordinator; `start()` before use, `stop()` is idempotent."""

    def __init__(
        self,
        settings: Settings,
        tasks_in_flight: Callable[[], int] = lambda: 0,
        keep_busy: int = 1,
    ) -> None:
        """`tasks_in_flight()` counts the deliveries this worker holds; a batch lingers only
        while at least `keep_busy` of them (the pool's capacity) are still unfinished. The
        worker calls `in_flight_changed()` whenever a delivery it held is settled."""
        self.settings = settings
        self.tasks_in_flight = tasks_in_flight
        self.keep_busy = max(1, keep_busy)
        self.base_url = settings.coordinator_url
        self._session: aiohttp.ClientSession | None = None
        self._outbox: list[tuple[TaskOutcome, asyncio.Future[IngestAnswer]]] = []
        self._outbox_ready = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._images: list[PendingImage] = []
        self._images_ready = asyncio.Event()
        self._image_sender: asyncio.Task[None] | None = None
        self._nudged = asyncio.Event()
        self._frames_supported = True
        self._sending = 0
        self._unreachable = False

    async def start(self) -> None:
        """Open the keep-alive session and the outcome batcher."""
        headers = {}
        if self.settings.cluster_token:
            headers["Authorization"] = f"Bearer {self.settings.cluster_token}"
        self._session = aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=120, connect=5),
            connector=aiohttp.TCPConnector(limit=32),
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
        )
        self._sender = asyncio.create_task(self._send_outcomes(), name="sd-outcome-batcher")
        self._image_sender = asyncio.create_task(self._send_images(), name="sd-image-batcher")

    async def stop(self) -> None:
        """Close the session."""
        senders = [t for t in (self._sender, self._image_sender) if t is not None]
        for sender in senders:
            sender.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        self._sender = self._image_sender = None
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("CoordinatorClient used before start()")
        return self._session

    async def _once(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.session.request(method, self.base_url + path, **kwargs) as response:
            body = await response.read()
            if response.status >= 500:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message=body[:200].decode()
                )
            if response.status >= 400:
                try:
                    detail = str(orjson.loads(body).get("detail"))
                except (orjson.JSONDecodeError, AttributeError):
                    detail = body[:200].decode(errors="replace")
                raise CoordinatorRejected(response.status, detail)
            if response.content_type == "application/json":
                return orjson.loads(body)
            return body

    async def call(self, method: str, path: str, *, retry: bool = True, **kwargs: Any) -> Any:
        """One request; with `retry`, transient failures (unreachable, 5xx) back off and retry
        until it succeeds, so a result is never dropped while the coordinator restarts."""
        attempt = 0
        while True:
            try:
                result = await self._once(method, path, **kwargs)
                if self._unreachable:
                    self._unreachable = False
                    log.info("coordinator at %s is reachable again", self.base_url)
                return result
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if not retry:
                    raise
                if not self._unreachable:
                    self._unreachable = True
                    log.warning(
                        "coordinator at %s unreachable (%s); holding results and retrying. "
                        "Check COORDINATOR_IP/COORDINATOR_PORT and that sd-coordinator runs.",
                        self.base_url, exc or type(exc).__name__,
                    )  # fmt: skip
                await asyncio.sleep(compute_backoff(attempt, **RETRY_BACKOFF))
                attempt += 1

    async def register(self, hello: WorkerHello) -> dict[str, Any]:
        """POST /register; answers the session and the coordinator's settings for workers."""
        result: dict[str, Any] = await self.call("POST", "/register", json=hello.model_dump())
        return result

    async def report(self, hello: WorkerHello) -> ReportAnswer:
        """POST /report, once: a missed report is replaced by the next one. Answers the
        recently cancelled jobs, the held tasks already finished elsewhere, and the other
        consuming workers and the unfinished tasks (for the tuner)."""
        answer = await self.call("POST", "/report", retry=False, json=hello.model_dump(),
                                 timeout=REPORT_TIMEOUT)  # fmt: skip
        # An older coordinator answers {"status": "ok"} only.
        return ReportAnswer.model_validate(answer if isinstance(answer, dict) else {})

    async def working(self, update: Working) -> None:
        """POST /working, once."""
        await self.call("POST", "/working", retry=False, json=update.model_dump())

    async def fetch_input(self, sha256: str) -> bytes:
        """GET /blobs/{sha256}."""
        data: bytes = await self.call("GET", f"/blobs/{sha256}")
        return data

    async def post_image(
        self, task_id: str, worker: str, png: bytes, duration_s: float = 0
    ) -> IngestAnswer:
        """Queue a result image; the batcher sends it with the others ready at the same time
        in one POST /result-images (raw bytes, one request for many results)."""
        header = ResultHeader(task_id=task_id, worker=worker, size=len(png),
                              duration_s=min(max(duration_s, 0), 86_400))  # fmt: skip
        future: asyncio.Future[IngestAnswer] = asyncio.get_running_loop().create_future()
        self._images.append((header, png, future))
        self._images_ready.set()
        self._nudged.set()
        return await future

    def _take_images(self) -> list[PendingImage]:
        size = 0
        count = 0
        for _, png, _ in self._images[:IMAGE_BATCH_MAX]:
            if count and size + len(png) > IMAGE_BATCH_BYTES:
                break
            size += len(png)
            count += 1
        batch = self._images[:count]
        del self._images[:count]
        if not self._images:
            self._images_ready.clear()
        return batch

    def in_flight_changed(self) -> None:
        """A delivery this worker held is settled: a lingering batch counts again. Without it, a
        batch that began to linger while the deliveries of the batch just answered were still
        finishing waited for the next result, and at a job's end for the whole LINGER_S."""
        self._nudged.set()

    async def _linger(self) -> None:
        """Give a batch a moment to fill while other tasks in flight will add to it."""
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            self._nudged.set()

        # One timer for the whole wait (not a wait_for per result: that is a Task each time).
        timer = asyncio.get_running_loop().call_later(LINGER_S, expire)
        try:
            while not expired:
                waiting = len(self._images) + len(self._outbox)
                unfinished = self.tasks_in_flight() - waiting - self._sending
                if waiting >= LINGER_UNTIL or unfinished < self.keep_busy:
                    return
                # Woken by the next result, a settled delivery, or the timer.
                self._nudged.clear()
                await self._nudged.wait()
        finally:
            timer.cancel()

    async def _send_images(self) -> None:
        while True:
            await self._images_ready.wait()
            await self._linger()
            batch = self._take_images()
            self._sending += len(batch)
            try:
                answers = await self._post_images(batch)
            except Exception as exc:  # CoordinatorRejected, or a bug: never strand the waiters
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                self._sending -= len(batch)
            _settle(((f, a) for (_, _, f), a in zip(batch, answers, strict=True)))

    async def _post_images(self, batch: list[PendingImage]) -> list[dict[str, Any]]:
        if self._frames_supported:
            body = _Streamed(result_frames.encode_parts([(h, png) for h, png, _ in batch]))
            try:
                answer = await self.call(
                    "POST",
                    "/result-images",
                    data=body,
                    headers={"Content-Type": result_frames.MEDIA_TYPE},
                )
                return list(answer["answers"])  # fmt: skip
            except CoordinatorRejected as exc:
                if exc.status not in (404, 405):
                    raise
                log.info("the coordinator has no POST /result-images (an older version): "
                         "sending results one request each")  # fmt: skip
                self._frames_supported = False
        answers: list[dict[str, Any]] = []
        for header, png, _ in batch:
            params = {"task_id": header.task_id, "worker": header.worker,
                      "duration_s": str(header.duration_s)}  # fmt: skip
            try:
                answers.append(
                    await self.call(
                        "POST",
                        "/result-image",
                        params=params,
                        data=png,
                        headers={"Content-Type": "image/png"},
                    )
                )
            except CoordinatorRejected as exc:
                answers.append({"task_id": header.task_id, "error": exc.detail,
                                "status": exc.status})  # fmt: skip
        return answers

    async def post_outcome(self, outcome: TaskOutcome) -> IngestAnswer:
        """Queue a JSON outcome; the batcher sends it with others in one POST /results."""
        future: asyncio.Future[IngestAnswer] = asyncio.get_running_loop().create_future()
        self._outbox.append((outcome, future))
        self._outbox_ready.set()
        self._nudged.set()
        return await future

    async def _send_outcomes(self) -> None:
        while True:
            await self._outbox_ready.wait()
            await self._linger()
            batch = self._outbox[:OUTCOME_BATCH_MAX]
            del self._outbox[:OUTCOME_BATCH_MAX]
            if not self._outbox:
                self._outbox_ready.clear()
            body = OutcomeBatch(outcomes=[o for o, _ in batch]).model_dump(mode="json")
            self._sending += len(batch)
            try:
                answers = await self.call("POST", "/results", json=body)
            except CoordinatorRejected as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                self._sending -= len(batch)
            _settle(((f, a) for (_, f), a in zip(batch, answers["answers"], strict=True)))

    async def queue_size(self) -> int:
        """GET /queue_size."""
        answer = await self.call("GET", "/queue_size", retry=False)
        return int(answer["pending_tasks"])


class _Streamed:
    """A request body sent chunked, part by part: the PNGs go out as they are, never joined
    into one body. Each request streams it afresh, so a retry sends it whole again."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part


def _settle(pairs: Iterable[tuple[asyncio.Future[IngestAnswer], dict[str, Any]]]) -> None:
    """Resolve each waiter with its answer from a batch: stored, or refused with a status."""
    for future, answer in pairs:
        if future.done():
            continue
        if answer.get("error"):
            future.set_exception(CoordinatorRejected(answer["status"], answer["error"]))
        else:
            future.set_result(IngestAnswer.model_validate(answer))
