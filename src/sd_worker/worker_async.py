"""`sd-worker --async`: the worker's parts built, started in order and stopped in reverse."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from aio_pika.abc import AbstractRobustConnection

from sd_common import topology
from sd_common.messages import ReportAnswer
from sd_common.settings import Settings
from sd_worker.cache import InputCache
from sd_worker.client import CoordinatorClient
from sd_worker.consumers import Consumers
from sd_worker.deliveries import Deliveries
from sd_worker.disk_full import DiskPause
from sd_worker.executor import Executor
from sd_worker.params import get_optimal_params
from sd_worker.processing import TaskProcessor
from sd_worker.reporting import Reporter
from sd_worker.tuning import CpuPause, Tuner

log = logging.getLogger("sd.worker")

DRAIN_TIMEOUT_S = 60.0
LOOP_RESTART_S = 1.0


async def _restarting(loop: Callable[[], Awaitable[None]]) -> None:
    """Run a background loop for ever: one that dies of an unexpected error is logged and
    started again, so one bad report never ends reporting or tuning."""
    while True:
        try:
            await loop()
        except Exception:
            log.exception("%s died; starting it again", getattr(loop, "__name__", "a loop"))
            await asyncio.sleep(LOOP_RESTART_S)


class AsyncWorker:
    """Consumes tasks with late acks; `run()` until stopped; first SIGTERM drains."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.node_name
        self.executor = Executor.for_settings(settings)
        cores = self.executor.workers
        self.client = CoordinatorClient(
            settings,
            tasks_in_flight=lambda: len(self.deliveries.inflight),
            keep_busy=self.executor.capacity,
            window=lambda: (
                self.consumers.prefetch * len(self.consumers.active) * self.deliveries.per_message
            ),
        )
        cache = InputCache(settings.data_dir / "worker-cache" / self.name)
        # Set when the running task or the consuming state changes: `/working` tells soon.
        changed = asyncio.Event()
        self.processor = TaskProcessor(
            self.name, settings, self.client, cache, self.executor, changed.set
        )
        self.deliveries = Deliveries(
            self.processor,
            settings.delivery_limit,
            self._delivered,
            self.client.in_flight_changed,
            lambda exc: self.disk_pause.hit(exc),
        )
        backups = topology.backup_queue_name(settings.queue_name, self.name, uuid.uuid4().hex)
        self.consumers = Consumers(settings, self.deliveries.on_message, changed.set, backups)
        self.disk_pause = DiskPause(self._disks, self.consumers)
        self.tuner = Tuner(
            settings,
            cores,
            self.consumers,
            self.client,
            lambda: len(self.deliveries.inflight),
            lambda: self.deliveries.per_message,
        )
        self.reporter = Reporter(
            settings,
            self.client,
            self.processor,
            cores,
            self.consumers,
            held=lambda: list(self.deliveries.held),
            changed=changed,
            on_cpu=CpuPause(settings.cpu_limit, self.consumers).sampled,
            on_answer=self._heard,
            per_message=lambda: self.deliveries.per_message,
        )
        self.connection: AbstractRobustConnection | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self._shutdown: asyncio.Task[None] | None = None
        self.phase = "start-up"  # what start() is doing, for the line a stop during it logs

    def _disks(self) -> list[Path]:
        """Where this worker writes: its DATA_DIR (the input cache), the coordinator's if
        shared (results)."""
        shared = self.processor.shared
        return [self.settings.data_dir, *([shared.data_dir] if shared is not None else [])]

    def _delivered(self, job_id: str, in_flight: int) -> None:
        self.tuner.delivered(job_id, in_flight)

    def _heard(self, answer: ReportAnswer) -> None:
        self.deliveries.drop_settled(answer.settled)
        self.tuner.heard(answer)

    async def start(self) -> None:
        """Start the pool, register, connect, and begin consuming."""
        self.phase = "the process pool's start"
        log.info("process pool: %d processes, %s", self.executor.workers, self.executor.kind)
        self.executor.start()
        await self.executor.ready()
        await self.client.start()
        self.phase = "registration with the coordinator"
        await self.reporter.register()
        self.phase = "the connection to RabbitMQ"
        self.connection = await topology.connect(self.settings, f"sd-worker {self.name}")
        consumers, prefetch = get_optimal_params(0, 1, self.executor.workers)
        await self.consumers.start(self.connection, consumers, prefetch)
        r = self.reporter
        for loop in (r.report_loop, self.tuner.run, r.working_loop):
            self._loops.append(asyncio.create_task(_restarting(loop), name=loop.__name__))
        log.info(
            "worker %s consuming %r on %s with %d pool processes (consumers=%d prefetch=%d)",
            self.name,
            self.settings.queue_name,
            topology.broker_display(self.settings),
            self.executor.workers,
            len(self.consumers.active),
            self.consumers.prefetch,
        )

    async def run(self) -> None:
        """Start, then serve until `stop()`."""
        await self.start()
        await self.stopped()

    async def stopped(self) -> None:
        """Wait until the worker stops (a drain or `stop()`)."""
        await self._stopped.wait()

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Stop taking tasks and wait for the ones in flight (graceful shutdown)."""
        if self.consumers.draining:
            return
        await self.consumers.drain()
        # The tasks no pool process has started go back to the queue at once, for the other
        # workers; only the running ones are waited for.
        handed_back = self.executor.hand_back()
        running = len(self.deliveries.inflight) - handed_back
        log.info(
            "draining: %d task(s) running, %d not started returned to the queue; waiting up "
            "to %.0f s",
            running,
            handed_back,
            timeout_s,
        )
        # Deliveries that were on their way when consuming stopped join the wait.
        if not await self.deliveries.settled_within(timeout_s):
            left = len(self.deliveries.inflight)
            log.warning("drain timed out; %d task(s) go back to the queue", left)
        await self.stop()

    async def stop(self) -> None:
        """Close everything now (idempotent); unacked messages return to the queue. Every
        caller returns only once the shutdown is complete."""
        if self._shutdown is None:
            self._shutdown = asyncio.create_task(self._close(), name="sd-worker-shutdown")
        await asyncio.shield(self._shutdown)

    async def _close(self) -> None:
        self._stopped.set()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(
            *self._loops,
            self.consumers.stop(),
            self.deliveries.stop(),
            self.disk_pause.stop(),
            return_exceptions=True,
        )
        if self.connection is not None:
            await self.connection.close()
        await self.reporter.final_report()
        await self.client.stop()
        self.executor.stop()
