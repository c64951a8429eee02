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
from sd_common.messages import IngestAnswer, ReportAnswer, TaskOutcome, WorkerHello, Working
from sd_common.result_frames import ResultHeader
from sd_common.settings import Settings
from sd_worker.link import LinkRefused

log = logging.getLogger("sd.worker.client")

# Retries while the coordinator is away: soon at first, then capped, spread so that the workers
# of a restarted coordinator do not all come back at once.
RETRY_BACKOFF = {"base_s": 0.2, "factor": 2.5, "cap_s": 5.0, "jitter": 0.2}
# One POST /results carries at most BATCH_MAX outcomes, of which at most IMAGE_BATCH_MAX images
# of IMAGE_BATCH_BYTES in all: a post that fails is sent again whole.
BATCH_MAX = 200
IMAGE_BATCH_MAX = 64
IMAGE_BATCH_BYTES = 32 * 1024 * 1024
# A request costs the coordinator more than storing a result, so while more results are on
# their way a batch waits up to LINGER_S to fill up; a lone task never waits.
# Long tasks (1080p images) need a wait that long to share a request at all.
# A waiting result still holds its delivery's prefetch slot (it is acked once stored), so a
# batch never waits while the pool has fewer tasks left than it can hold, nor once it holds
# half of the worker's window: the slots it would keep are the ones that bring the pool its
# next tasks, and the other half keeps the pool busy while the batch is stored and acked.
LINGER_S = 0.5
LINGER_UNTIL = 32
# A batch up to this size is sent joined into one body; a larger one streams.
JOIN_MAX = 1024 * 1024

FRAMES_TYPE = {"Content-Type": result_frames.MEDIA_TYPE}

# A report stuck on a cut link must not hold up the next ones (the default allows 120 s).
REPORT_TIMEOUT = aiohttp.ClientTimeout(total=5, connect=3)

# An outcome waiting to be sent: the outcome (a ResultHeader for an image), its PNG (b"" for
# none), and who waits for its answer.
Pending = tuple[TaskOutcome, bytes, "asyncio.Future[IngestAnswer]"]


class CoordinatorRejected(LinkRefused):
    """The coordinator answered 4xx: retrying the same request cannot help."""


class CoordinatorFailed(aiohttp.ClientResponseError):
    """The coordinator answered 5xx (a full disk, a failure of its own): worth retrying."""

    def __init__(self, response: aiohttp.ClientResponse, detail: str) -> None:
        super().__init__(response.request_info, (), status=response.status, message=detail)
        self.detail = detail


def _detail(body: bytes) -> str:
    """The `detail` of an error answer, or its first bytes."""
    try:
        return str(orjson.loads(body).get("detail"))
    except (orjson.JSONDecodeError, AttributeError):
        return body[:200].decode(errors="replace")


class CoordinatorClient:
    """aiohttp session to the coordinator; `start()` before use, `stop()` is idempotent."""

    def __init__(
        self,
        settings: Settings,
        tasks_in_flight: Callable[[], int] = lambda: 0,
        keep_busy: int = 1,
        window: Callable[[], int] = lambda: 0,
    ) -> None:
        """`tasks_in_flight()` counts the deliveries this worker holds; a batch lingers only
        while at least `keep_busy` of them (the pool's capacity) are still unfinished, and
        while it holds less than half of `window()`, the deliveries the worker may hold (0:
        unknown). The worker calls `in_flight_changed()` whenever a delivery it held is
        settled."""
        self.settings = settings
        self.tasks_in_flight = tasks_in_flight
        self.keep_busy = max(1, keep_busy)
        self.window = window
        self.base_url = settings.coordinator_url
        self._session: aiohttp.ClientSession | None = None
        self._outbox: list[Pending] = []
        self._outbox_ready = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._nudged = asyncio.Event()
        self._sending = 0
        self._unreachable = False
        self._failing: set[str] = set()  # paths answered 5xx, until one succeeds again

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

    async def stop(self) -> None:
        """Close the session."""
        if self._sender is not None:
            sender, self._sender = self._sender, None
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
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
                raise CoordinatorFailed(response, _detail(body))
            if response.status >= 400:
                raise CoordinatorRejected(response.status, _detail(body))
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
                if path in self._failing:
                    self._failing.discard(path)
                    log.info("coordinator at %s takes %s %s again", self.base_url, method, path)
                return result
            except CoordinatorFailed as exc:
                if not retry:
                    raise
                # It answers, but cannot take this now: said once until it takes it again.
                if path not in self._failing:
                    self._failing.add(path)
                    log.warning(
                        "coordinator at %s answered %d to %s %s (%s); holding it and retrying",
                        self.base_url,
                        exc.status,
                        method,
                        path,
                        exc.detail,
                    )
                await asyncio.sleep(compute_backoff(attempt, **RETRY_BACKOFF))
                attempt += 1
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if not retry:
                    raise
                if not self._unreachable:
                    self._unreachable = True
                    log.warning(
                        "coordinator at %s unreachable (%s); holding results and retrying. "
                        "Check COORDINATOR_IP/COORDINATOR_PORT and that sd-coordinator runs.",
                        self.base_url,
                        str(exc) or type(exc).__name__,
                    )
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
        answer = await self.call(
            "POST", "/report", retry=False, json=hello.model_dump(), timeout=REPORT_TIMEOUT
        )
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
        """Queue a result image; the batcher sends it with the other outcomes ready at the same
        time in one POST /results (raw bytes, one request for many results)."""
        header = ResultHeader(
            task_id=task_id,
            worker=worker,
            size=len(png),
            duration_s=min(max(duration_s, 0), 86_400),
        )
        return await self._queue(header, png)

    async def post_outcome(self, outcome: TaskOutcome) -> IngestAnswer:
        """Queue an outcome without image bytes (a custom task's output, a failure, a result
        in shared storage); the batcher sends it with the others in one POST /results."""
        return await self._queue(outcome, b"")

    async def _queue(self, header: TaskOutcome, png: bytes) -> IngestAnswer:
        future: asyncio.Future[IngestAnswer] = asyncio.get_running_loop().create_future()
        self._outbox.append((header, png, future))
        self._outbox_ready.set()
        self._nudged.set()
        return await future

    def _take_batch(self) -> list[Pending]:
        """The next outcomes to send: at most BATCH_MAX, of which at most IMAGE_BATCH_MAX images
        of IMAGE_BATCH_BYTES in all (or one larger image alone)."""
        count = images = size = 0
        for header, png, _ in self._outbox[:BATCH_MAX]:
            if isinstance(header, ResultHeader):
                if images == IMAGE_BATCH_MAX or (count and size + len(png) > IMAGE_BATCH_BYTES):
                    break
                images += 1
                size += len(png)
            count += 1
        batch = self._outbox[:count]
        del self._outbox[:count]
        if not self._outbox:
            self._outbox_ready.clear()
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
                waiting = len(self._outbox)
                unfinished = self.tasks_in_flight() - waiting - self._sending
                window = self.window()
                enough = min(LINGER_UNTIL, max(1, window // 2)) if window else LINGER_UNTIL
                if waiting >= enough or unfinished < self.keep_busy:
                    return
                # Woken by the next result, a settled delivery, or the timer.
                self._nudged.clear()
                await self._nudged.wait()
        finally:
            timer.cancel()

    async def _send_outcomes(self) -> None:
        while True:
            await self._outbox_ready.wait()
            await self._linger()
            batch = self._take_batch()
            self._sending += len(batch)
            try:
                parts = result_frames.encode_parts([(h, png) for h, png, _ in batch])
                # One write for a small batch; a large one goes chunked, part by part.
                body = b"".join(parts) if sum(map(len, parts)) <= JOIN_MAX else _Streamed(parts)
                answer = await self.call("POST", "/results", data=body, headers=FRAMES_TYPE)
            except Exception as exc:  # CoordinatorRejected, or a bug: never strand the waiters
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                self._sending -= len(batch)
            _settle(((f, a) for (_, _, f), a in zip(batch, answer["answers"], strict=True)))

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
