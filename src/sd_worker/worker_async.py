"""`sd-worker --async`: aio-pika consumers feeding the process pool, tuned live."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractRobustConnection
from pydantic import ValidationError

from sd_common import topology
from sd_common.messages import HELD_MAX, TaskMessage, WorkerHello, Working
from sd_common.settings import Settings
from sd_common.version import VERSION
from sd_worker.acks import AckCoalescer
from sd_worker.cache import InputCache
from sd_worker.client import CoordinatorClient, CoordinatorRejected
from sd_worker.executor import Executor
from sd_worker.params import get_optimal_params
from sd_worker.processing import RetryLater, TaskProcessor
from sd_worker.resources import ResourceSampler, ip_towards, os_name
from sd_worker.shared import SharedStorage
from sd_worker.transport import Consumer, Delivery
from sd_worker.tuning import Tuner

log = logging.getLogger("sd.worker")

DRAIN_TIMEOUT_S = 60.0
WORKING_INTERVAL_S = 1.0
FINAL_REPORT_TIMEOUT_S = 2.0
LOOP_RESTART_S = 1.0
# A copy of a task already running here waits this long for the first run to end.
COPY_WAIT_S = 1.0


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
        self.session = uuid.uuid4().hex
        self.executor = Executor(
            preload=settings.task_modules, pillow_blocks_max=settings.pillow_blocks_max,
            portable=settings.portable_runtime, memory_mb=settings.pool_memory_mb,
            time_limit_s=settings.task_time_limit_s,
        )  # fmt: skip
        self.client = CoordinatorClient(
            settings, tasks_in_flight=lambda: len(self.inflight), keep_busy=self.executor.capacity
        )
        self.cache = InputCache(settings.data_dir / "worker-cache" / self.name)
        self.processor = TaskProcessor(
            self.name, settings, self.client, self.cache, self.executor, self._task_changed
        )
        self.sampler = ResourceSampler()
        self.ip = ip_towards(settings.coordinator_ip, settings.coordinator_port)
        self.os = os_name()
        self.connection: AbstractRobustConnection | None = None
        self.consumers: list[Consumer] = []
        self.prefetch = 0
        self.paused = False
        self.draining = False
        self.inflight: set[asyncio.Task[None]] = set()
        self._retired: list[Consumer] = []  # closing once their deliveries are settled
        # Task id → the handlers of its deliveries here (a backup copy may land beside the
        # original), oldest first: reported, so the coordinator can rerun them if we go silent.
        self.held: dict[str, list[asyncio.Task[None]]] = {}
        # Held tasks the coordinator says are finished elsewhere: acked without running.
        self.settled_elsewhere: set[str] = set()
        self._processing: set[asyncio.Task[None]] = set()  # handlers inside processor.handle
        self._report_rtt_ms: float | None = None
        self.acks = AckCoalescer()
        self._stopped = asyncio.Event()
        self._shutdown: asyncio.Task[None] | None = None
        # Tuning, CPU pauses and draining each start and stop consumers: one at a time.
        self._reconfiguring = asyncio.Lock()
        self._changed = asyncio.Event()
        self.tuner = Tuner(self)
        self._background: list[asyncio.Task[None]] = []
        self.phase = "start-up"  # what start() is doing, for the line a stop during it logs

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the pool, register, connect, and begin consuming."""
        self.phase = "the process pool's start"
        log.info("process pool: %d processes, %s", self.executor.workers, self.executor.kind)
        self.executor.start()
        await self.executor.ready()
        await self.client.start()
        self.phase = "registration with the coordinator"
        await self._register()
        self.phase = "the connection to RabbitMQ"
        self.connection = await topology.connect(self.settings, f"sd-worker {self.name}")
        consumers, prefetch = get_optimal_params(0, 1, self.executor.workers)
        await self._apply(consumers, prefetch)
        for loop in (self._report_loop, self.tuner.run, self._working_loop):
            self._background.append(asyncio.create_task(_restarting(loop), name=loop.__name__))
        log.info(
            "worker %s consuming %r on %s with %d pool processes (consumers=%d prefetch=%d)",
            self.name, self.settings.queue_name, topology.broker_display(self.settings),
            self.executor.workers, len(self.consumers), self.prefetch,
        )  # fmt: skip

    async def run(self) -> None:
        """Start, then serve until `stop()`."""
        await self.start()
        await self.stopped()

    async def stopped(self) -> None:
        """Wait until the worker stops (a drain or `stop()`)."""
        await self._stopped.wait()

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Stop taking tasks and wait for the ones in flight (graceful shutdown)."""
        if self.draining:
            return
        async with self._reconfiguring:
            self.draining = True
            self._changed.set()
            log.info(
                "draining: %d task(s) in flight, waiting up to %.0f s", len(self.inflight),
                timeout_s,
            )  # fmt: skip
            for consumer in self.consumers:
                await consumer.pause()
        deadline = asyncio.get_running_loop().time() + timeout_s
        # Deliveries that were on their way when consuming stopped join the set while we wait.
        while self.inflight:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                log.warning("drain timed out; %d task(s) go back to the queue", len(self.inflight))
                break
            await asyncio.wait(set(self.inflight), timeout=remaining)
        await self.stop()

    async def stop(self) -> None:
        """Close everything now (idempotent); unacked messages return to the queue. Every
        caller returns only once the shutdown is complete."""
        if self._shutdown is None:
            self._shutdown = asyncio.create_task(self._close(), name="sd-worker-shutdown")
        await asyncio.shield(self._shutdown)

    async def _close(self) -> None:
        self._stopped.set()
        for task in self._background:
            task.cancel()
        for task in list(self.inflight):
            task.cancel()
        await asyncio.gather(*self._background, *self.inflight, return_exceptions=True)
        if self.connection is not None:
            await self.connection.close()
        # The broker has every unsettled delivery back: say so, or the coordinator would
        # publish what this worker last reported holding once more when it falls silent.
        try:
            async with asyncio.timeout(FINAL_REPORT_TIMEOUT_S):
                await self.client.report(self._hello())
        except Exception as exc:
            log.debug("final report failed: %s", exc)
        await self.client.stop()
        self.executor.stop()

    # -- consuming --------------------------------------------------------------------------

    async def on_message(self, message: Delivery) -> None:
        """Handle one delivery; ack only after the coordinator stored the outcome."""
        task = asyncio.current_task()
        task_id = message.message_id
        if task is not None:
            self.inflight.add(task)
            if task_id:
                self.held.setdefault(task_id, []).append(task)
        try:
            await self._handle(message)
        finally:
            if task is not None:
                self.inflight.discard(task)
                if task_id and (handlers := self.held.get(task_id)):
                    handlers.remove(task)
                    if not handlers:
                        del self.held[task_id]
                        self.settled_elsewhere.discard(task_id)
            self.client.in_flight_changed()

    async def _handle(self, message: Delivery) -> None:
        try:
            task = TaskMessage.model_validate_json(message.body)
        except ValidationError as exc:
            log.error("rejecting a malformed message %s: %s", message.message_id, exc)
            await self._settle(message, ack=False, requeue=False)  # dead-letters it
            return
        self.tuner.delivered(task.job_id, len(self.inflight))
        if len(self.held.get(task.task_id, ())) > 1:
            await self._handle_copy(message, task.task_id)
            return
        current = asyncio.current_task()
        if current is not None:
            self._processing.add(current)
        ack = True
        try:
            await self.processor.handle(task)
        except RetryLater:
            ack = False
        except asyncio.CancelledError:
            if task.task_id not in self.settled_elsewhere or current is None:
                raise
            current.uncancel()  # cancelled by `drop_settled`, not by a shutdown
            log.info("task %s was finished elsewhere meanwhile: acked without running it here",
                     task.task_id)  # fmt: skip
        except Exception:
            # Even its outcome could not be stored: the delivery must not hold a prefetch slot
            # until the channel closes, so it goes back to the queue (the delivery limit ends
            # a task that keeps failing).
            log.exception("task %s: could not store its outcome; returned to the queue",
                          task.task_id)  # fmt: skip
            ack = False
        finally:
            if current is not None:
                self._processing.discard(current)
        await self._settle(message, ack=ack)

    async def _handle_copy(self, message: Delivery, task_id: str) -> None:
        """A second delivery of a task already running here: a backup meant for another worker
        (this one lags), or a redelivery after the channel closed. If the first run ends within
        COPY_WAIT_S its outcome covers this copy too; if not, the copy goes back to the queue
        for a worker that is free (the wait keeps a lone consumer from bouncing it hot)."""
        current = asyncio.current_task()
        first = [t for t in self.held.get(task_id, ()) if t is not current]
        if first:
            await asyncio.wait(first, timeout=COPY_WAIT_S)
        # Each return counts towards the queue's delivery limit: keep two for the copy's run.
        if (len(self.held.get(task_id, ())) > 1
                and message.deliveries + 2 < self.settings.delivery_limit):  # fmt: skip
            log.info("task %s delivered again while running here: returned to the queue for "
                     "another worker", task_id)  # fmt: skip
            await self._settle(message, ack=False)
        else:
            await self._settle(message, ack=True)

    def drop_settled(self, task_ids: list[str]) -> None:
        """The coordinator stored these held tasks' outcomes already (they ran elsewhere while
        this worker was cut off or behind): stop working on them; each is acked as it ends."""
        for task_id in task_ids:
            handlers = self.held.get(task_id)
            if handlers:
                self.settled_elsewhere.add(task_id)
                for handler in handlers:
                    if handler in self._processing:  # not one already settling its delivery
                        handler.cancel()

    async def _settle(self, message: Delivery, *, ack: bool, requeue: bool = True) -> None:
        try:
            if ack:
                await self.acks.ack(message)
            else:
                await self.acks.settle_alone(message, requeue=requeue, reject=not requeue)
        except Exception as exc:
            # The channel it came on closed (broker restart): RabbitMQ redelivers it, and the
            # coordinator answers the repeat as a duplicate.
            log.info("could not settle task message %s (%s); it will be redelivered",
                     message.message_id, exc)  # fmt: skip

    async def _apply(self, consumers: int, prefetch: int) -> None:
        """Run `consumers` consumers with `prefetch` each; prefetch applies to consumers created
        after basic.qos, so a new prefetch re-creates them (in-flight messages stay ackable)."""
        async with self._reconfiguring:
            if self.connection is None or self.draining:
                return
            if prefetch != self.prefetch:
                # All consumers at once: a re-consume is three round trips (cancel, qos,
                # consume) to a broker that, at a job's start, is busy taking the job's
                # messages, and one consumer after another kept the pool short of tasks.
                await asyncio.gather(*(self._consume_at(c, prefetch) for c in self.consumers))
                self.prefetch = prefetch
            while len(self.consumers) < consumers:
                consumer = Consumer(await self.connection.channel(), self.settings, self.on_message)
                self.consumers.append(consumer)
                await self._consume_at(consumer, prefetch)
            while len(self.consumers) > consumers:
                consumer = self.consumers.pop()
                self._retired.append(consumer)
                # Its unacked messages must still be acked on this channel: close it when idle.
                await consumer.pause()
                self._background.append(asyncio.create_task(consumer.close_when_idle()))

    async def _consume_at(self, consumer: Consumer, prefetch: int) -> None:
        """(Re)start `consumer` with `prefetch`; a paused worker only sets the prefetch."""
        await consumer.pause()  # nothing to cancel on a new consumer
        if self.paused:
            await consumer.channel.set_qos(prefetch_count=prefetch)
        else:
            await consumer.start(prefetch)  # sets the new prefetch, then consumes again

    async def _set_paused(self, paused: bool) -> None:
        async with self._reconfiguring:
            if paused == self.paused or self.draining:
                return
            self.paused = paused
            for consumer in self.consumers:
                if paused:
                    await consumer.pause()
                else:
                    await consumer.start(self.prefetch)
        self._changed.set()
        log.info("CPU %s CPU_LIMIT=%.0f%%: %s consuming", "above" if paused else "back under",
                 self.settings.cpu_limit, "paused" if paused else "resumed")  # fmt: skip

    # -- talking to the coordinator ---------------------------------------------------------

    def consumers_on_broker(self) -> int:
        """This worker's consumers that the broker counts on the queue: the consuming ones and
        the cancelled ones still holding deliveries."""
        self._retired = [c for c in self._retired if c.held_by_tag]
        tags = {c.tag for c in self.consumers if c.tag is not None}
        for consumer in (*self.consumers, *self._retired):
            tags |= consumer.held_by_tag.keys()
        return len(tags)

    def _status(self) -> str:
        if self.draining:
            return "draining"
        if self.processor.current:
            return "busy"
        return "paused" if self.paused else "free"

    def _hello(self, cpu: float = 0, ram: float = 0, net: float = 0) -> WorkerHello:
        return WorkerHello(
            name=self.name, session=self.session, cpu=cpu, ram=ram, net=net, ip=self.ip,
            cpus=self.executor.workers, status=self._status(),
            task_id=self.processor.current_task, consumers=len(self.consumers),
            prefetch=self.prefetch, processed=self.processor.processed,
            failed=self.processor.failed, version=VERSION, os=self.os,
            held=list(self.held)[:HELD_MAX], rtt_ms=self._report_rtt_ms,
        )  # fmt: skip

    async def _register(self) -> None:
        while True:
            try:
                answer = await self.client.register(self._hello())
                log.info("registered with the coordinator at %s as %r",
                         self.client.base_url, self.name)  # fmt: skip
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
                await asyncio.sleep(2)

    def _share_storage(self, offer: object) -> None:
        shared = None
        if self.settings.shared_storage == "auto":
            shared = SharedStorage.probe(offer)
        if shared is not None and self.processor.shared is None:
            log.info("the coordinator's DATA_DIR %s is visible here: inputs are read and "
                     "results written there, not over HTTP (SHARED_STORAGE=off to disable)",
                     shared.data_dir)  # fmt: skip
        self.processor.shared = shared

    async def _report_loop(self) -> None:
        interval = self.settings.report_interval_s
        while True:
            await asyncio.sleep(interval)
            cpu, ram, net = self.sampler.sample()
            await self._set_paused(cpu > self.settings.cpu_limit)
            try:
                sent = time.perf_counter()
                answer = await self.client.report(self._hello(cpu, ram, net))
                self._report_rtt_ms = round((time.perf_counter() - sent) * 1000, 1)
                self.processor.cancelled_jobs = frozenset(answer.cancelled_jobs)
                self.drop_settled(answer.settled)
                self.tuner.heard(answer)
            except CoordinatorRejected as exc:
                if exc.status == 404:  # the coordinator restarted and forgot us
                    await self._register()
                else:
                    log.warning("report refused: %s", exc)
            except Exception as exc:
                log.debug("report failed: %s", exc)

    def _task_changed(self) -> None:
        self._changed.set()

    async def _working_loop(self) -> None:
        """Send /working when the current task changes: at most every WORKING_INTERVAL_S, with
        every task started since the last one, so a burst of tasks costs one request."""
        sent: tuple[str, str | None] | None = None
        while True:
            await self._changed.wait()
            self._changed.clear()
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
                    Working(name=self.name, session=self.session, status=state[0],
                            task_id=state[1], started=started)
                )  # fmt: skip
                sent = state
            except Exception as exc:  # best effort: the final outcome is what counts
                log.debug("/working failed: %s", exc)
                await asyncio.sleep(self.settings.report_interval_s)
                continue
            await asyncio.sleep(WORKING_INTERVAL_S)
