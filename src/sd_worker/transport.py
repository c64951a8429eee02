"""The worker's one way beneath aio-pika: consuming on the robust channel's aiormq channel.

aio-pika's `Queue.consume` wraps every delivery in an `IncomingMessage` and runs its callback
in a second task, the largest part of the worker's own cost per thumbnail after AMQP frame
parsing. Here each delivery reaches the handler as a `Delivery`, in aiormq's own task. Each use
of aiormq below names the public aio-pika call it stands in for; RABBIT_PUBLIC_API=true makes
those calls instead (the "deliveries through aio-pika's Queue.consume" ablation).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel

from sd_common import topology
from sd_common.backoff import compute_backoff
from sd_common.settings import Settings

log = logging.getLogger("sd.worker")

RECONSUME_FIRST_S = 0.5
RECONSUME_MAX_S = 10.0

# aio-pika does not re-export this one (`sd-worker --check` names the missing permission).
ChannelAccessRefused = aiormq.exceptions.ChannelAccessRefused


class Delivery:
    """One message as aiormq delivered it, settled on the channel it came on.

    Stands in for aio-pika's `IncomingMessage`: only what the worker reads, no per-message
    wrapper."""

    __slots__ = ("body", "channel", "deliveries", "delivery_tag", "message_id")

    def __init__(self, message: aiormq.abc.DeliveredMessage) -> None:
        self.body: bytes = message.body
        self.channel: aiormq.abc.AbstractChannel = message.channel
        self.delivery_tag: int | None = message.delivery_tag
        properties = message.header.properties
        self.message_id: str | None = properties.message_id
        # Earlier deliveries of this message, as the quorum queue counts them (its limit).
        count = (properties.headers or {}).get("x-delivery-count", 0)
        self.deliveries: int = count if isinstance(count, int) else 0

    async def ack(self, multiple: bool = False) -> None:
        await self.channel.basic_ack(_tag(self), multiple=multiple)

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        await self.channel.basic_nack(_tag(self), multiple=multiple, requeue=requeue)

    async def reject(self, requeue: bool = False) -> None:
        await self.channel.basic_reject(_tag(self), requeue=requeue)


class PublicDelivery(Delivery):
    """A `Delivery` made from aio-pika's `IncomingMessage` (RABBIT_PUBLIC_API=true), settled
    through it."""

    __slots__ = ("message",)

    def __init__(self, message: AbstractIncomingMessage) -> None:
        self.message = message
        self.body = message.body
        self.channel = message.channel
        self.delivery_tag = message.delivery_tag
        self.message_id = message.message_id
        count = (message.headers or {}).get("x-delivery-count", 0)
        self.deliveries = count if isinstance(count, int) else 0

    async def ack(self, multiple: bool = False) -> None:
        await self.message.ack(multiple=multiple)

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        await self.message.nack(multiple=multiple, requeue=requeue)

    async def reject(self, requeue: bool = False) -> None:
        await self.message.reject(requeue=requeue)


def _tag(message: Delivery) -> int:
    tag = message.delivery_tag
    if tag is None:
        raise ValueError("a message without a delivery tag cannot be settled")
    return tag


DeliveryHandler = Callable[[Delivery], Awaitable[None]]


class Consumer:
    """One channel with its own prefetch and one consumer on the work queue (or on the worker's
    backup queue), handing each delivery to `handler`; `start(prefetch)`, `pause()`,
    `close_when_idle()`.

    The robust channel still reconnects and re-declares the queue after a broker restart;
    `_reopened` then consumes again on the new channel. When the broker itself ends the
    consumer (the queue was deleted), `_consume_again` declares the queue and consumes again.
    Both stand in for what aio-pika's robust queue does for `Queue.consume`.
    """

    def __init__(
        self,
        channel: AbstractRobustChannel,
        settings: Settings,
        handler: DeliveryHandler,
        backup_queue: str | None = None,
    ) -> None:
        self.channel = channel
        self.settings = settings
        self.handler = handler
        # Consuming the worker's own backup queue instead of the work queue.
        self.backup_queue = backup_queue
        self.queue_name = backup_queue or settings.queue_name
        self.tag: str | None = None
        self.inflight: set[asyncio.Task[None]] = set()
        self.held_by_tag: Counter[str] = Counter()  # unsettled deliveries by consumer tag
        self._underlay: aiormq.abc.AbstractChannel | None = None
        self.queue: AbstractQueue | None = None
        # Held while the consumer starts or stops, so a pause never races a re-consume.
        self._switching = asyncio.Lock()
        self._recovery: asyncio.Task[None] | None = None
        channel.reopen_callbacks.add(self._reopened)

    async def start(self, prefetch: int) -> None:
        await self.channel.set_qos(prefetch_count=prefetch)
        if self.queue is None:
            # Once per channel: the robust channel keeps every queue declared on it and
            # declares each again after a reconnection, so a declare per re-tune (each new
            # prefetch starts the consumer again) would pile them up.
            self.queue = await self._declare(robust=True)
        async with self._switching:
            await self._consume()

    async def _declare(self, *, robust: bool) -> AbstractQueue:
        if self.backup_queue is not None:
            return await topology.declare_backup_queue(
                self.channel, self.backup_queue, robust=robust
            )
        s = self.settings
        return await topology.declare_work_queue(
            self.channel, s.queue_name, s.delivery_limit, robust=robust
        )

    async def _consume(self) -> None:
        """Stands in for `Queue.consume`: the callback gets aiormq's message, unwrapped."""
        assert self.queue is not None, "declared in start()"
        await self._hear_cancels()
        if self.settings.rabbit_public_api:
            self.tag = await self.queue.consume(self._deliver_public)
            return
        assert self._underlay is not None
        ok = await self._underlay.basic_consume(self.queue.name, self._deliver)
        self.tag = ok.consumer_tag

    async def _hear_cancels(self) -> None:
        """Stands in for nothing public: aio-pika has no hook for a consumer that the broker
        itself cancels, and its robust queue consumes again only after a reconnection."""
        self._underlay = await self.channel.get_underlay_channel()
        self._underlay.on_consumer_cancel_callbacks.add(self._cancelled)

    async def _reopened(self, _channel: object) -> None:
        if self.settings.rabbit_public_api:
            await self._hear_cancels()  # on the new channel
            return  # aio-pika's robust queue consumes again itself
        async with self._switching:
            if self.tag is not None:  # it was consuming when the connection dropped
                await self._consume()

    def _cancelled(self, frame: aiormq.spec.Basic.Cancel) -> None:
        lost = frame.consumer_tag
        if lost is not None and lost == self.tag and self._recovery is None:
            self._recovery = asyncio.create_task(self._consume_again(lost))

    async def _consume_again(self, lost: str) -> None:
        """The broker cancelled consumer `lost`: declare the queue again and consume, retrying
        with back-off, until that works or the consumer is paused, closed or consuming again
        (after a reconnection) by other means."""
        name = self.queue_name
        attempt = 0
        try:
            while self.tag == lost and not self.channel.is_closed:
                try:
                    # On the broker only: the channel already re-declares these after a
                    # reconnection, and one more entry per cancel would pile up there.
                    await self._declare(robust=False)
                    async with self._switching:
                        if self.tag != lost:
                            return
                        if self.settings.rabbit_public_api and self.queue is not None:
                            # Forgotten by the robust queue too, which would otherwise
                            # consume under it again after a reconnection.
                            await self.queue.cancel(lost)
                        await self._consume()
                    log.warning(
                        "the broker cancelled this worker's consumer on %r (was the queue "
                        "deleted?); declared it again and consuming",
                        name,
                    )
                    return
                except Exception as exc:
                    delay = compute_backoff(
                        attempt, base_s=RECONSUME_FIRST_S, cap_s=RECONSUME_MAX_S
                    )
                    attempt += 1
                    log.warning(
                        "could not consume %r again (%s); retrying in %.1f s", name, exc, delay
                    )
                    await asyncio.sleep(delay)
        finally:
            self._recovery = None

    async def _deliver(self, message: aiormq.abc.DeliveredMessage) -> None:
        # A quorum queue keeps counting a cancelled consumer until its deliveries are settled:
        # the tuner subtracts the ones of this worker from the broker's count.
        held = self.held_by_tag
        tag = message.consumer_tag or ""
        held[tag] += 1
        try:
            await self.on_message(Delivery(message))
        finally:
            held[tag] -= 1
            if not held[tag]:
                del held[tag]

    async def _deliver_public(self, message: AbstractIncomingMessage) -> None:
        held = self.held_by_tag
        tag = message.consumer_tag or ""
        held[tag] += 1
        try:
            await self.on_message(PublicDelivery(message))
        finally:
            held[tag] -= 1
            if not held[tag]:
                del held[tag]

    async def on_message(self, message: Delivery) -> None:
        """Track this channel's deliveries, so it closes only once they are settled."""
        task = asyncio.current_task()
        if task is not None:
            self.inflight.add(task)
        try:
            await self.handler(message)
        finally:
            if task is not None:
                self.inflight.discard(task)

    async def close_when_idle(self) -> None:
        """Stop deliveries, let the unacked ones finish (they ack on this channel), close."""
        await self.pause()
        while self.inflight:
            await asyncio.wait(set(self.inflight))
        await self.channel.close()

    async def pause(self) -> None:
        """Stop new deliveries; unacked messages stay on the channel and can still be acked.
        Stands in for `Queue.cancel`, on the channel `_consume` consumed on."""
        async with self._switching:
            if self.tag is not None and self.settings.rabbit_public_api:
                tag, self.tag = self.tag, None
                assert self.queue is not None
                if not self.channel.is_closed:
                    try:
                        await self.queue.cancel(tag)
                    except (aiormq.exceptions.AMQPError, ConnectionError, TimeoutError) as exc:
                        log.info(
                            "could not cancel consumer %s (%s); it stops with its channel",
                            tag,
                            str(exc) or type(exc).__name__,
                        )
                return
            if self.tag is not None and self._underlay is not None:
                tag, self.tag = self.tag, None
                if not self._underlay.is_closed:  # a closed channel delivers nothing more anyway
                    try:
                        await self._underlay.basic_cancel(tag)
                    except (
                        aiormq.exceptions.AMQPError,
                        aiormq.exceptions.ChannelInvalidStateError,
                        ConnectionError,
                        TimeoutError,
                    ) as exc:
                        # The link to the broker is down (a cut, a timed-out RPC): no
                        # deliveries come now, and the broker cancels the consumer itself.
                        log.info(
                            "could not cancel consumer %s (%s); it stops with its channel",
                            tag,
                            str(exc) or type(exc).__name__,
                        )
