"""Each delivery of a task: run once here, held while it runs, settled (late ack) once its
outcome is stored; a second copy of a task already running here goes back to the queue.

A message of several tasks (`TaskBatch`) is run as one part per task, each held and run like a
delivery of its own; the message is acked once every part's outcome is stored, or returned to
the queue if any part must be retried."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from sd_common.messages import TaskBatch, TaskMessage, is_batch
from sd_common.storage import is_disk_full
from sd_worker.acks import AckCoalescer
from sd_worker.processing import RetryLater, TaskProcessor
from sd_worker.transport import Delivery

log = logging.getLogger("sd.worker")

# A copy of a task already running here waits this long for the first run to end.
COPY_WAIT_S = 1.0


class Deliveries:
    """`on_message` for every consumer; `on_delivered(job_id, in_flight)` hears each task
    that arrives, `on_done()` each delivery that ends. `stop()` cancels the ones in flight
    (unsettled, they return to the queue)."""

    def __init__(
        self,
        processor: TaskProcessor,
        delivery_limit: int,
        on_delivered: Callable[[str, int], None],
        on_done: Callable[[], None],
        on_disk_full: Callable[[BaseException], Awaitable[None]] | None = None,
    ) -> None:
        self.processor = processor
        self.delivery_limit = delivery_limit
        self.on_delivered = on_delivered
        self.on_done = on_done
        self.on_disk_full = on_disk_full
        self.acks = AckCoalescer()
        self.inflight: set[asyncio.Task[None]] = set()
        # Task id → the handlers of its deliveries here (a backup copy may land beside the
        # original), oldest first: reported, so the coordinator can rerun them if we go silent.
        self.held: dict[str, list[asyncio.Task[None]]] = {}
        # Held tasks the coordinator says are finished elsewhere: acked without running.
        self.settled_elsewhere: set[str] = set()
        self._processing: set[asyncio.Task[None]] = set()  # handlers inside processor.handle
        self.per_message = 1  # tasks in the latest message

    async def settled_within(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the deliveries in flight (and the ones that join them
        meanwhile) to be settled; False if some were not."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.inflight:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            await asyncio.wait(set(self.inflight), timeout=remaining)
        return True

    async def stop(self) -> None:
        """Cancel the deliveries in flight; unsettled, the broker has them back once their
        channel closes."""
        tasks = list(self.inflight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def on_message(self, message: Delivery | Part) -> None:
        """Handle one delivery; ack only after the coordinator stored the outcome."""
        if isinstance(message, Part):
            task = message.task
        else:
            read = await self._read(message)
            if read is None:
                self.on_done()
                return
            if isinstance(read, list):
                self.per_message = len(read)
                batch = _Batch(self, message, len(read))
                await asyncio.gather(*(self.on_message(Part(batch, t)) for t in read))
                return
            self.per_message = 1
            task = read
        handler = asyncio.current_task()
        if handler is not None:
            self.inflight.add(handler)
            self.held.setdefault(task.task_id, []).append(handler)
        try:
            await self._handle(message, task)
        finally:
            if handler is not None:
                self.inflight.discard(handler)
                if handlers := self.held.get(task.task_id):
                    handlers.remove(handler)
                    if not handlers:
                        del self.held[task.task_id]
                        self.settled_elsewhere.discard(task.task_id)
            self.on_done()

    async def _read(self, message: Delivery) -> TaskMessage | list[TaskMessage] | None:
        """The message's task, or its tasks; None if it is malformed (rejected: it
        dead-letters)."""
        try:
            if is_batch(message.body):
                return TaskBatch.validate_json(message.body)
            return TaskMessage.model_validate_json(message.body)
        except ValidationError as exc:
            log.error("rejecting a malformed message %s: %s", message.message_id, exc)
            await self._settle(message, ack=False, requeue=False)  # dead-letters it
            return None

    async def _handle(self, message: Delivery | Part, task: TaskMessage) -> None:
        self.on_delivered(task.job_id, len(self.inflight))
        if len(self.held.get(task.task_id, ())) > 1:
            await self._handle_copy(message, task.task_id)
            return
        current = asyncio.current_task()
        if current is not None:
            self._processing.add(current)
        ack = True
        try:
            await self.processor.handle(task)
        except RetryLater as exc:
            ack = False
            if exc.__cause__ is not None and is_disk_full(exc.__cause__):
                await self._disk_full(exc.__cause__)
        except asyncio.CancelledError:
            if task.task_id not in self.settled_elsewhere or current is None:
                raise
            current.uncancel()  # cancelled by `drop_settled`, not by a shutdown
            log.info(
                "task %s was finished elsewhere meanwhile: acked without running it here",
                task.task_id,
            )
        except Exception as exc:
            # Even its outcome could not be stored: the delivery must not hold a prefetch slot
            # until the channel closes, so it goes back to the queue (the delivery limit ends
            # a task that keeps failing).
            ack = False
            if is_disk_full(exc):
                await self._disk_full(exc)
            else:
                log.exception(
                    "task %s: could not store its outcome; returned to the queue", task.task_id
                )
        finally:
            if current is not None:
                self._processing.discard(current)
        await self._settle(message, ack=ack)

    async def _disk_full(self, exc: BaseException) -> None:
        """Consuming pauses before the task goes back, or it could come straight back here."""
        if self.on_disk_full is not None:
            await self.on_disk_full(exc)

    async def _handle_copy(self, message: Delivery | Part, task_id: str) -> None:
        """A second delivery of a task already running here: a backup meant for another worker
        (this one lags), or a redelivery after the channel closed. If the first run ends within
        COPY_WAIT_S its outcome covers this copy too; if not, the copy goes back to the queue
        for a worker that is free (the wait keeps a lone consumer from bouncing it hot)."""
        current = asyncio.current_task()
        first = [t for t in self.held.get(task_id, ()) if t is not current]
        if first:
            await asyncio.wait(first, timeout=COPY_WAIT_S)
        # Each return counts towards the queue's delivery limit: keep two for the copy's run.
        # A part is never returned alone (its message holds other tasks): the first run,
        # still held here, stands for it.
        if (
            not isinstance(message, Part)
            and len(self.held.get(task_id, ())) > 1
            and message.deliveries + 2 < self.delivery_limit
        ):
            log.info(
                "task %s delivered again while running here: returned to the queue for "
                "another worker",
                task_id,
            )
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

    async def _settle(self, message: Delivery | Part, *, ack: bool, requeue: bool = True) -> None:
        if isinstance(message, Part):
            await message.batch.settle(ack)
            return
        try:
            if ack:
                await self.acks.ack(message)
            else:
                await self.acks.settle_alone(message, requeue=requeue, reject=not requeue)
        except Exception as exc:
            # The channel it came on closed (broker restart): RabbitMQ redelivers it, and the
            # coordinator answers the repeat as a duplicate.
            log.info(
                "could not settle task message %s (%s); it will be redelivered",
                message.message_id,
                exc,
            )


class _Batch:
    """A message of several tasks: settled once, when its last part is."""

    __slots__ = ("all_acked", "deliveries", "message", "unsettled")

    def __init__(self, deliveries: Deliveries, message: Delivery, parts: int) -> None:
        self.deliveries = deliveries
        self.message = message
        self.unsettled = parts
        self.all_acked = True

    async def settle(self, ack: bool) -> None:
        """One part is settled: its outcome stored (`ack`) or to be retried. The last part
        acks the message, or returns it to the queue if any part is to be retried (the parts
        already stored are answered as duplicates when it comes back)."""
        self.all_acked = self.all_acked and ack
        self.unsettled -= 1
        if not self.unsettled:
            await self.deliveries._settle(self.message, ack=self.all_acked)


class Part:
    """One task of a message of several, handled as a delivery of its own."""

    __slots__ = ("batch", "task")

    def __init__(self, batch: _Batch, task: TaskMessage) -> None:
        self.batch = batch
        self.task = task
