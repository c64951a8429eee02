"""The worker's consumers on its connection: how many, with what prefetch, paused or draining."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

from sd_common.settings import Settings
from sd_worker.transport import Consumer, DeliveryHandler

log = logging.getLogger("sd.worker")

# No limit: the coordinator sends backups a few per core, and only while this worker idles.
BACKUP_PREFETCH = 0
# A new prefetch needs new consumers, and the broker gives a new consumer its whole prefetch
# whatever the worker still holds from the old one: a smaller prefetch applied at once would let
# a worker hold both windows (at a job's start, a few re-tunes took most of the job to one
# worker). So a smaller one waits until the worker holds at most half the new window, or
# RECONSUME_WAIT_MAX_S; a larger one, which the pool may be waiting for, goes at once.
RECONSUME_WAIT_MAX_S = 5.0
RECONSUME_POLL_S = 0.02


class Consumers:
    """`start(connection, consumers, prefetch)`, then `apply()` (tuning), `set_paused()`
    (CPU_LIMIT) and `drain()` change them, one change at a time; `stop()` ends the closing
    of retired ones. Every delivery goes to `handler`; `on_change` hears a pause or a drain."""

    def __init__(
        self,
        settings: Settings,
        handler: DeliveryHandler,
        on_change: Callable[[], None],
        backup_queue: str | None = None,
    ) -> None:
        self.settings = settings
        self.handler = handler
        self.on_change = on_change
        self.connection: AbstractRobustConnection | None = None
        self.active: list[Consumer] = []
        # Backups of a lagging worker's tasks, which the coordinator sends to this worker by name
        # while it idles: on the shared queue they could reach the lagging worker again.
        self.backup_queue = backup_queue
        self.backup: Consumer | None = None
        self.prefetch = 0
        self.paused = False
        self._pauses: set[str] = set()  # why consuming is paused ("cpu", "disk")
        self.draining = False
        self._retired: list[Consumer] = []  # closing once their deliveries are settled
        self._closing: list[asyncio.Task[None]] = []
        self._prefetch_changes = 0  # so a wait to consume again knows it was overtaken
        self._reconsuming: asyncio.Task[None] | None = None
        self.start_failed = False  # consumers a failed re-consume left paused
        # Tuning, CPU pauses and draining each start and stop consumers: one at a time.
        self._reconfiguring = asyncio.Lock()

    async def start(
        self, connection: AbstractRobustConnection, consumers: int, prefetch: int
    ) -> None:
        """Consume on `connection` with `consumers` consumers of `prefetch` each."""
        self.connection = connection
        await self.apply(consumers, prefetch)
        if self.backup_queue is not None and not self.draining:
            channel = await connection.channel()
            self.backup = Consumer(channel, self.settings, self.handler, self.backup_queue)
            async with self._reconfiguring:
                await self._consume_at(self.backup, BACKUP_PREFETCH)

    async def stop(self) -> None:
        """Stop closing retired consumers and waiting to consume again (the connection's close
        ends them; idempotent)."""
        tasks = [*self._closing, *([self._reconsuming] if self._reconsuming else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def channel(self) -> AbstractRobustChannel | None:
        """A channel to read the queue's counters on, if consuming."""
        return self.active[0].channel if self.active else None

    async def apply(self, consumers: int, prefetch: int) -> None:
        """Run `consumers` consumers with `prefetch` each; prefetch applies to consumers created
        after basic.qos, so a new prefetch re-creates them (in-flight messages stay ackable);
        a smaller one in the background, once this worker holds at most half the new window."""
        async with self._reconfiguring:
            if self.connection is None or self.draining:
                return
            change, shrink = None, prefetch < self.prefetch
            if prefetch != self.prefetch or self.start_failed:
                self.start_failed = False
                await asyncio.gather(*(c.pause() for c in self.active))
                self.prefetch = prefetch
                self._prefetch_changes += 1
                change = self._prefetch_changes
            while len(self.active) < consumers:
                channel = await self.connection.channel()
                consumer = Consumer(channel, self.settings, self.handler)
                self.active.append(consumer)
                await self._consume_at(consumer, prefetch)
            while len(self.active) > consumers:
                consumer = self.active.pop()
                self._retired.append(consumer)
                # Its unacked messages must still be acked on this channel: close it when idle.
                await consumer.pause()
                self._closing.append(asyncio.create_task(consumer.close_when_idle()))
        if change is not None and shrink:
            # Waits in the background: the tuner keeps looking, and a later change supersedes it.
            self._reconsuming = asyncio.create_task(self._consume_again_later(change))
        elif change is not None:
            await self._consume_again(change, wait=False)

    def held(self) -> int:
        """Deliveries this worker holds on the work queue, not yet settled."""
        return sum(sum(c.held_by_tag.values()) for c in (*self.active, *self._retired))

    async def _consume_again(self, change: int, *, wait: bool) -> None:
        """Start the paused consumers at the new prefetch (with `wait`, once the worker holds
        at most half their window), unless a later change, a pause or a drain came first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (RECONSUME_WAIT_MAX_S if wait else 0)
        while self.held() > self.prefetch * len(self.active) // 2 and loop.time() < deadline:
            await asyncio.sleep(RECONSUME_POLL_S)
            if change != self._prefetch_changes:
                return
        async with self._reconfiguring:
            if change != self._prefetch_changes or self.paused or self.draining:
                return
            try:
                # All consumers at once: a re-consume is round trips (qos, consume) to a broker
                # that, at a job's start, is busy taking the job's messages.
                await asyncio.gather(
                    *(c.start(self.prefetch) for c in self.active if c.tag is None)
                )
            except BaseException:
                self.start_failed = True  # the tuner's next look starts them again
                raise

    async def _consume_again_later(self, change: int) -> None:
        try:
            await self._consume_again(change, wait=True)
        except Exception as exc:
            log.warning(
                "could not consume again after a re-tune (%s); retrying at the next look", exc
            )

    async def _consume_at(self, consumer: Consumer, prefetch: int) -> None:
        """(Re)start `consumer` with `prefetch`; a paused worker only sets the prefetch."""
        await consumer.pause()  # nothing to cancel on a new consumer
        if self.paused:
            await consumer.channel.set_qos(prefetch_count=prefetch)
        else:
            await consumer.start(prefetch)  # sets the new prefetch, then consumes again

    @property
    def paused_for(self) -> list[str]:
        """Why consuming is paused ("cpu", "disk"), if it is."""
        return sorted(self._pauses)

    async def set_paused(self, paused: bool, why: str = "cpu") -> bool:
        """Pause every consumer for `why`, or lift that reason: consuming resumes once no
        reason is left. False if that changed nothing (or draining)."""
        async with self._reconfiguring:
            if paused:
                self._pauses.add(why)
            else:
                self._pauses.discard(why)
            paused = bool(self._pauses)
            if paused == self.paused or self.draining:
                return False
            self.paused = paused
            for consumer in self._all():
                if paused:
                    await consumer.pause()
                else:
                    await consumer.start(
                        BACKUP_PREFETCH if consumer is self.backup else self.prefetch
                    )
        self.on_change()
        return True

    async def drain(self) -> None:
        """Stop consuming for good (graceful shutdown); unacked deliveries stay ackable."""
        async with self._reconfiguring:
            if self.draining:
                return
            self.draining = True
            self.on_change()
            for consumer in self._all():
                await consumer.pause()

    def _all(self) -> list[Consumer]:
        return [*self.active, *([self.backup] if self.backup is not None else [])]

    def on_broker(self) -> int:
        """This worker's consumers that the broker counts on the queue: the consuming ones and
        the cancelled ones still holding deliveries."""
        self._retired = [c for c in self._retired if c.held_by_tag]
        tags = {c.tag for c in self.active if c.tag is not None}
        for consumer in (*self.active, *self._retired):
            tags |= consumer.held_by_tag.keys()
        return len(tags)
