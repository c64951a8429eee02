"""The embedded default's local worker: the same TaskProcessor and process pool as
`sd-worker --async`, fed from the in-process queue and reporting straight into the registry."""

from __future__ import annotations

import asyncio
import logging
import uuid

from sd_common.messages import IngestAnswer, TaskMessage, TaskOutcome, WorkerHello, Working
from sd_common.settings import Settings
from sd_common.storage import DISK_FULL_SAY_S, Every, is_disk_full
from sd_common.version import VERSION
from sd_coordinator.blobs import Blobs
from sd_coordinator.broker import EmbeddedBroker
from sd_coordinator.errors import ServiceError
from sd_coordinator.ingest import Ingestor
from sd_coordinator.registry import Registry
from sd_coordinator.store import Store
from sd_worker.disk_full import until_room
from sd_worker.embedded import LinkRefused, LocalProcessor, RetryLater

log = logging.getLogger("sd.coordinator.local_worker")

LOOP_RESTART_S = 1.0


class LocalRefused(LinkRefused):
    """The coordinator's own services refused what the local worker asked (as a 4xx would)."""


class LocalLink:
    """The worker's view of the coordinator, in process: no HTTP, same contract."""

    def __init__(self, blobs: Blobs, ingestor: Ingestor) -> None:
        self.blobs = blobs
        self.ingestor = ingestor

    async def fetch_input(self, sha256: str) -> bytes:
        data = await self.blobs.get_input(sha256)
        if data is None:
            raise LocalRefused(404, f"unknown input {sha256}")
        return data

    async def post_image(
        self, task_id: str, worker: str, png: bytes, duration_s: float = 0
    ) -> IngestAnswer:
        try:
            return await self.ingestor.image_result(task_id, worker, png, duration_s)
        except ServiceError as exc:
            raise LocalRefused(exc.status_code, exc.detail) from exc

    async def post_outcome(self, outcome: TaskOutcome) -> IngestAnswer:
        try:
            return await self.ingestor.outcome(outcome)
        except ServiceError as exc:
            raise LocalRefused(exc.status_code, exc.detail) from exc


class LocalWorker:
    """Consumer loops over the embedded queue; `start()`, then an idempotent `stop()`."""

    def __init__(
        self,
        settings: Settings,
        broker: EmbeddedBroker,
        registry: Registry,
        store: Store,
        link: LocalLink,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.registry = registry
        self.store = store
        self.link = link
        self.name = f"{settings.node_name}-local"
        self.session = uuid.uuid4().hex
        self.processor = LocalProcessor(self.name, settings, link, self._changed)
        self._tasks: list[asyncio.Task[None]] = []
        self.loops = 0
        self._marks: set[asyncio.Task[None]] = set()
        self._full_since: float | None = None  # loop time the disk was first found full
        self._full_said = Every(DISK_FULL_SAY_S)
        self._room: asyncio.Task[None] | None = None  # waits for DATA_DIR to have room

    async def start(self) -> None:
        """Start the pool, register as the coordinator's own node, start consuming."""
        # In process the coordinator's DATA_DIR is ours: results are written in place.
        self.processor.start(self.link.blobs.storage_offer())
        self.registry.register(self._hello(), is_local=True)
        # In process there is no network to hide, but I/O tasks (sleep) and result storage
        # overlap with pool work, so run as many loops as the worker would have messages.
        self.loops = max(self.processor.idle_slots(), self.processor.cores * 2)
        for i in range(self.loops):
            self._tasks.append(asyncio.create_task(self._keep_consuming(i), name=f"sd-local-{i}"))
        self._tasks.append(asyncio.create_task(self._report(), name="sd-local-report"))
        log.info("local worker %r running with %d pool processes", self.name, self.processor.cores)

    async def stop(self) -> None:
        """Stop consuming and shut the pool down (idempotent); unfinished tasks stay queued
        in SQLite and are enqueued again at the next start."""
        tasks, self._tasks = self._tasks, []
        if self._room is not None:
            tasks.append(self._room)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.processor.stop()

    async def _keep_consuming(self, index: int) -> None:
        """One consuming loop, started again (and logged) if it ever dies."""
        while True:
            try:
                await self._consume()
            except Exception:
                log.exception("local worker loop %d died; starting it again", index)
                await asyncio.sleep(LOOP_RESTART_S)

    async def _consume(self) -> None:
        while True:
            message, deliveries = await self.broker.get()
            try:
                await self.processor.handle(message)
            except Exception as exc:  # RetryLater, or not even its outcome could be stored
                retry = isinstance(exc, RetryLater)
                cause = exc.__cause__ if retry else exc
                full = cause is not None and is_disk_full(cause)
                if cause is not None and full:  # now and then: its traceback tells no more
                    self._disk_full(cause)
                elif not retry:
                    log.exception("task %s: could not store its outcome: %s", message.task_id, exc)
                reason = str(exc) if retry else f"unexpected {type(exc).__name__}: {exc}"
                # A full disk is the coordinator's fault, not the task's: not a delivery that
                # counts towards DELIVERY_LIMIT, or a long one would fail every task queued.
                await self._give_back(message, deliveries + (not full), reason)
                if full:  # nothing can be stored until the disk has room: run nothing till then
                    await self._wait_for_room()
            else:
                if self._full_since is not None:
                    waited = asyncio.get_running_loop().time() - self._full_since
                    self._full_since = None
                    log.warning(
                        "DATA_DIR has room again: results are stored (after %.0f s)", waited
                    )

    async def _wait_for_room(self) -> None:
        """Until a file can be written in DATA_DIR again (one probe for every loop)."""
        if self._room is None or self._room.done():
            room = until_room([self.settings.data_dir])
            self._room = asyncio.create_task(room, name="sd-local-room")
        await asyncio.shield(self._room)

    def _disk_full(self, exc: BaseException) -> None:
        """Say that the disk is full when it first is, then every DISK_FULL_SAY_S."""
        if self._full_since is None:  # a new spell of a full disk is said at once
            self._full_since = asyncio.get_running_loop().time()
            self._full_said = Every(DISK_FULL_SAY_S)
        if not self._full_said.due():
            return
        log.error(
            "the disk of DATA_DIR (%s) is full: the local worker cannot store results, so its "
            "tasks stay queued; free space there and they run again (%s)",
            self.settings.data_dir,
            exc,
        )

    async def _give_back(self, message: TaskMessage, deliveries: int, reason: str) -> None:
        try:
            await self.broker.requeue(message, deliveries, reason)
        except Exception as exc:
            # Its failure could not be stored either (a full disk): the broker kept it queued;
            # a pause keeps this loop from spinning on it until the disk has room again.
            if is_disk_full(exc):
                self._disk_full(exc)
            else:
                log.error(
                    "task %s stays queued: its failure was not stored (%s)", message.task_id, exc
                )
            await asyncio.sleep(LOOP_RESTART_S)

    def _hello(self) -> WorkerHello:
        p = self.processor
        cpu, ram, net = p.sample()
        return WorkerHello(
            name=self.name,
            session=self.session,
            cpu=cpu,
            ram=ram,
            net=net,
            ip="127.0.0.1",
            cpus=p.cores,
            status="busy" if p.current else "free",
            task_id=p.current_task,
            consumers=self.loops,
            prefetch=1,
            processed=p.processed,
            failed=p.failed,
            version=VERSION,
            os=p.os,
        )

    def _changed(self) -> None:
        task_id = self.processor.current_task
        self.registry.working(
            Working(
                name=self.name,
                session=self.session,
                status="busy" if task_id else "free",
                task_id=task_id,
            )
        )
        started = self.processor.started
        if started:
            mark = asyncio.ensure_future(self.store.mark_running(list(started), self.name))
            started.clear()
            self._marks.add(mark)
            mark.add_done_callback(self._marked)

    def _marked(self, mark: asyncio.Future[None]) -> None:
        self._marks.discard(mark)
        if not mark.cancelled() and (error := mark.exception()) is not None:
            # Only the dashboard's "running" is lost; the outcome is stored on its own.
            if is_disk_full(error):
                self._disk_full(error)
            else:
                log.warning("could not mark tasks running: %s", error)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.settings.report_interval_s)
            self.registry.report(self._hello(), is_local=True)
