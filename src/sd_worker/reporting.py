"""Telling the coordinator about this worker: registration, reports, `/working` updates."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from sd_common.messages import HELD_MAX, ReportAnswer, WorkerHello, Working
from sd_common.settings import Settings
from sd_common.version import VERSION
from sd_worker.client import CoordinatorClient, CoordinatorRejected
from sd_worker.consumers import Consumers
from sd_worker.processing import TaskProcessor
from sd_worker.resources import ResourceSampler, ip_towards, os_name
from sd_worker.shared import SharedStorage

log = logging.getLogger("sd.worker")

WORKING_INTERVAL_S = 1.0
FINAL_REPORT_TIMEOUT_S = 2.0
REGISTER_RETRY_S = 2.0


class Reporter:
    """`register()` once, then `report_loop()` every REPORT_INTERVAL_S (each CPU sample goes to
    `on_cpu`, each answer to `on_answer`) and `working_loop()`, which sends `/working` once
    `changed` is set (the running task or the consuming state changed); `final_report()` when
    stopped."""

    def __init__(
        self,
        settings: Settings,
        client: CoordinatorClient,
        processor: TaskProcessor,
        cores: int,
        consumers: Consumers,
        held: Callable[[], list[str]],
        changed: asyncio.Event,
        on_cpu: Callable[[float], Awaitable[None]],
        on_answer: Callable[[ReportAnswer], None],
        per_message: Callable[[], int] = lambda: 1,
    ) -> None:
        self.settings = settings
        self.client = client
        self.processor = processor
        self.cores = cores
        self.consumers = consumers
        self.held = held
        self.changed = changed
        self.on_cpu = on_cpu
        self.on_answer = on_answer
        self.per_message = per_message  # tasks in the latest message
        self.name = settings.node_name
        self.session = uuid.uuid4().hex
        self.sampler = ResourceSampler()
        self.ip = ip_towards(settings.coordinator_ip, settings.coordinator_port)
        self.os = os_name()
        self._report_rtt_ms: float | None = None

    def _status(self) -> str:
        if self.consumers.draining:
            return "draining"
        if self.processor.current:
            return "busy"
        return "paused" if self.consumers.paused else "free"

    def hello(self, cpu: float = 0, ram: float = 0, net: float = 0) -> WorkerHello:
        """This worker as a registration or report describes it."""
        return WorkerHello(
            name=self.name,
            session=self.session,
            cpu=cpu,
            ram=ram,
            net=net,
            ip=self.ip,
            cpus=self.cores,
            status=self._status(),
            paused_for=self.consumers.paused_for if self.consumers.paused else [],
            task_id=self.processor.current_task,
            consumers=len(self.consumers.active),
            prefetch=self.consumers.prefetch * self.per_message(),  # in tasks
            processed=self.processor.processed,
            failed=self.processor.failed,
            version=VERSION,
            os=self.os,
            held=self.held()[:HELD_MAX],
            rtt_ms=self._report_rtt_ms,
            backup_queue=self.consumers.backup_queue,
        )

    async def register(self) -> None:
        """Register, retrying while the name is taken; exit on any other refusal."""
        while True:
            try:
                answer = await self.client.register(self.hello())
                log.info(
                    "registered with the coordinator at %s as %r", self.client.base_url, self.name
                )
                self._share_storage(answer.get("storage"))
                return
            except CoordinatorRejected as exc:
                if exc.status == 401:
                    raise SystemExit(
                        "error: the coordinator refused this worker (401): set CLUSTER_TOKEN to "
                        "the coordinator's value"
                    ) from exc
                if exc.status != 409:
                    raise SystemExit(
                        f"error: {self.client.base_url} refused to register this worker "
                        f"({exc}); is COORDINATOR_IP/COORDINATOR_PORT an sd-coordinator?"
                    ) from exc
                log.warning("%s; retrying in 2 s", exc.detail)
                await asyncio.sleep(REGISTER_RETRY_S)

    def _share_storage(self, offer: object) -> None:
        shared = None
        if self.settings.shared_storage == "auto":
            shared = SharedStorage.probe(offer)
        if shared is not None and self.processor.shared is None:
            log.info(
                "the coordinator's DATA_DIR %s is visible here: inputs are read and "
                "results written there, not over HTTP (SHARED_STORAGE=off to disable)",
                shared.data_dir,
            )
        self.processor.shared = shared

    async def report_loop(self) -> None:
        """Sample this node and report every REPORT_INTERVAL_S (until cancelled)."""
        interval = self.settings.report_interval_s
        while True:
            await asyncio.sleep(interval)
            cpu, ram, net = self.sampler.sample()
            await self.on_cpu(cpu)
            try:
                sent = time.perf_counter()
                answer = await self.client.report(self.hello(cpu, ram, net))
                self._report_rtt_ms = round((time.perf_counter() - sent) * 1000, 1)
                self.processor.cancelled_jobs = frozenset(answer.cancelled_jobs)
                self.on_answer(answer)
            except CoordinatorRejected as exc:
                if exc.status == 404:  # the coordinator restarted and forgot us
                    await self.register()
                else:
                    log.warning("report refused: %s", exc)
            except Exception as exc:
                log.debug("report failed: %s", exc)

    async def final_report(self) -> None:
        """Report once more, briefly: the broker has every unsettled delivery back, and the
        coordinator would otherwise publish what this worker last reported holding once more
        when it falls silent."""
        try:
            async with asyncio.timeout(FINAL_REPORT_TIMEOUT_S):
                await self.client.report(self.hello())
        except Exception as exc:
            log.debug("final report failed: %s", exc)

    async def working_loop(self) -> None:
        """Send /working when the current task changes: at most every WORKING_INTERVAL_S, with
        every task started since the last one, so a burst of tasks costs one request."""
        sent: tuple[str, str | None] | None = None
        while True:
            await self.changed.wait()
            self.changed.clear()
            state = (self._status(), self.processor.current_task)
            # A task that already finished has its outcome stored, which says more than
            # "running": only the ones still running are worth a row update.
            current = self.processor.current
            started = [t for t in self.processor.started if t in current]
            if state == sent and not started:
                continue
            self.processor.started.clear()
            try:
                await self.client.working(
                    Working(
                        name=self.name,
                        session=self.session,
                        status=state[0],
                        task_id=state[1],
                        started=started,
                    )
                )
                sent = state
            except Exception as exc:  # best effort: the final outcome is what counts
                log.debug("/working failed: %s", exc)
                await asyncio.sleep(self.settings.report_interval_s)
                continue
            await asyncio.sleep(WORKING_INTERVAL_S)
