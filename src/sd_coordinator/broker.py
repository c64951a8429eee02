"""Task publishing: RabbitMQ with publisher confirms, or the embedded in-process queue.

Both expose `start()`, `stop()`, `publish(messages)` (returns once every message is safely
queued) and `pending()` (tasks ready in the queue). Tasks that reach the delivery limit are
handed to `on_dead_letter(task_id, reason)`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from sd_common import topology
from sd_common.messages import TaskBatch, TaskMessage, is_batch
from sd_common.settings import Settings
from sd_coordinator import transport
from sd_coordinator.errors import Unavailable

log = logging.getLogger("sd.coordinator.broker")

DeadLetterHandler = Callable[[str, str], Awaitable[None]]
PUBLISH_TIMEOUT_S = 10.0
RECONNECT_WAIT_S = 5.0
PENDING_CACHE_S = 0.5
QUEUE_PROBE_TIMEOUT_S = 2.0


class Broker(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(
        self,
        messages: Sequence[TaskMessage],
        queue: str | None = None,
        per_message: int | None = None,
    ) -> None: ...
    async def pending(self) -> int: ...


def dead_letter_reason(message: AbstractIncomingMessage) -> str:
    """Why RabbitMQ dead-lettered a message, from its x-death / x-first-death headers."""
    headers = message.headers or {}
    reason = headers.get("x-first-death-reason") or "rejected"
    if isinstance(reason, bytes):
        reason = reason.decode(errors="replace")
    if reason == "delivery_limit":
        return "gave up after reaching the delivery limit"
    return f"dead-lettered by RabbitMQ ({reason})"


class AmqpBroker:
    """Publishes to the durable quorum work queue with confirms; consumes its dead letters."""

    def __init__(self, settings: Settings, on_dead_letter: DeadLetterHandler) -> None:
        self.settings = settings
        self.on_dead_letter = on_dead_letter
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._pending_at = 0.0
        self._pending = 0
        # Tasks and messages published since the queue was last seen empty: their ratio turns
        # the broker's count of ready messages into tasks.
        self._queued_tasks = 0
        self._queued_messages = 0

    async def start(self) -> None:
        """Connect, declare the topology, start consuming dead letters."""
        s = self.settings
        if not s.rabbit_public_api:
            transport.use_fast_path()
        self._connection = await topology.connect(s, f"sd-coordinator {s.node_name}")
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._queue = await topology.declare_work_queue(
            self._channel, s.queue_name, s.delivery_limit
        )
        dead_channel = await self._connection.channel()
        await dead_channel.set_qos(prefetch_count=50)
        failed = await topology.declare_failed_queue(dead_channel, s.queue_name)
        await failed.consume(self._on_dead_message)

    async def stop(self) -> None:
        """Close the connection (idempotent)."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()

    def _ready_channel(self) -> AbstractChannel:
        if self._channel is None:
            raise RuntimeError("AmqpBroker used before start()")
        return self._channel

    async def publish(
        self,
        messages: Sequence[TaskMessage],
        queue: str | None = None,
        per_message: int | None = None,
    ) -> None:
        """Publish persistent messages to the work queue (or to `queue`, a worker's backup
        queue); return once the broker confirmed every one. TimeoutError if confirms stop
        coming: while the robust connection waits for a broker that is away (restarting, or
        behind a silent network), an upload must fail fast, not hang. Unroutable if `queue`
        is gone. A large publish to the work queue puts several tasks in a message
        (`transport.tasks_per_message`); a backup queue gets one task a message."""
        channel = self._ready_channel()
        if channel.is_closed and isinstance(channel, AbstractRobustChannel):
            # The robust connection is reconnecting (a broker restart): wait a moment for it
            # rather than refuse an upload the broker will take a second from now.
            async with asyncio.timeout(RECONNECT_WAIT_S):
                await channel.ready()
        fast = not self.settings.rabbit_public_api
        if per_message is None:
            per_message = 1 if queue else transport.tasks_per_message(len(messages))
        parcels = transport.parcels(messages, per_message)
        for window in transport.windows(parcels):
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await transport.publish_window(
                    channel, queue or self.settings.queue_name, window, fast=fast
                )
        if not queue:
            self._queued_tasks += len(messages)
            self._queued_messages += len(parcels)

    async def pending(self) -> int:
        """Tasks ready in the work queue (cached for half a second): the broker counts
        messages, each of one task or several. Unavailable while the broker is away, rather
        than waiting for the reconnection."""
        now = time.monotonic()
        if self._ready_channel().is_closed:  # a cached count must not hide an outage
            self._pending_at = 0.0
        if now - self._pending_at > PENDING_CACHE_S:
            s = self.settings
            channel = self._ready_channel()
            try:
                async with asyncio.timeout(QUEUE_PROBE_TIMEOUT_S):
                    self._pending = await topology.ready_messages(
                        channel, s.queue_name, s.delivery_limit
                    )
            except Exception as exc:  # closed channel, lost connection, no answer: all "away"
                raise Unavailable(
                    f"RabbitMQ at {topology.broker_display(s)} is unreachable; the queue size "
                    "is unknown until it is back"
                ) from exc
            self._pending_at = now
        return self._tasks_in(self._pending)

    def _tasks_in(self, messages: int) -> int:
        if not messages:
            self._queued_tasks = self._queued_messages = 0
            return 0
        if not self._queued_messages:  # published before this coordinator started
            return messages
        per_message = max(1.0, self._queued_tasks / self._queued_messages)
        return round(messages * per_message)

    async def _on_dead_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process(requeue=True):
            if is_batch(message.body):
                await self._split(message)
                return
            try:
                task_id = str(orjson.loads(message.body)["task_id"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                log.warning(
                    "dropping an unreadable dead letter (message_id=%s)", message.message_id
                )
                return
            await self.on_dead_letter(task_id, dead_letter_reason(message))

    async def _split(self, message: AbstractIncomingMessage) -> None:
        """A message of several tasks reached the delivery limit (one of them may crash the
        worker each time): its tasks go back to the work queue one a message, so only the one
        that keeps failing ends failed. Those already done run again, answered as duplicates."""
        try:
            tasks = TaskBatch.validate_json(message.body)
        except ValueError:
            log.warning("dropping an unreadable dead letter (message_id=%s)", message.message_id)
            return
        log.warning(
            "a message of %d tasks was dead-lettered (%s): its tasks go back to the queue one "
            "a message",
            len(tasks),
            dead_letter_reason(message),
        )
        await self.publish(tasks, per_message=1)


class EmbeddedBroker:
    """In-process queue for the single-machine default. Tasks live in SQLite, so after a restart
    the coordinator re-enqueues every unfinished task; nothing here needs to be durable."""

    def __init__(self, settings: Settings, on_dead_letter: DeadLetterHandler) -> None:
        self.settings = settings
        self.on_dead_letter = on_dead_letter
        self.queue: asyncio.Queue[tuple[TaskMessage, int]] | None = None

    async def start(self) -> None:
        """Create the queue."""
        self.queue = asyncio.Queue()

    async def stop(self) -> None:
        """Drop the queue; its tasks are still unfinished in SQLite."""
        self.queue = None

    def _ready_queue(self) -> asyncio.Queue[tuple[TaskMessage, int]]:
        if self.queue is None:
            raise RuntimeError("EmbeddedBroker used before start()")
        return self.queue

    async def publish(
        self,
        messages: Sequence[TaskMessage],
        queue: str | None = None,
        per_message: int | None = None,
    ) -> None:
        """Enqueue messages (delivery count 0); there is one queue here, whatever `queue` says,
        and one task an entry, whatever `per_message` says (an entry costs next to nothing)."""
        ready = self._ready_queue()
        for message in messages:
            ready.put_nowait((message, 0))

    async def pending(self) -> int:
        """Messages waiting in the queue."""
        return self._ready_queue().qsize()

    async def get(self) -> tuple[TaskMessage, int]:
        """Next message and how often it was delivered before."""
        return await self._ready_queue().get()

    async def requeue(self, message: TaskMessage, deliveries: int, reason: str) -> None:
        """Return a message after a failed attempt; at the delivery limit it dead-letters."""
        if deliveries >= self.settings.delivery_limit:
            try:
                await self.on_dead_letter(
                    message.task_id, f"{reason}; gave up after {deliveries} tries"
                )
            except Exception:
                # Not even its failure could be stored (a full disk): it stays queued, and
                # runs again once it can be stored.
                self._ready_queue().put_nowait((message, deliveries - 1))
                raise
            return
        self._ready_queue().put_nowait((message, deliveries))
