"""Committed changes, fanned out: in-process to the dashboard's streams, and over the topic
exchange between processes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection

from sd_academic.topology import EVENT_BINDINGS, declare_events_exchange

log = logging.getLogger("sd.academic.events")

SUBSCRIBER_BACKLOG = 1000
PUBLISH_TIMEOUT_S = 10.0


class EventHub:
    """In-process fan-out of events to subscribers (each a bounded queue; a subscriber that
    falls behind loses the oldest events, and its stream tells the page to reload)."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    async def publish(self, routing_key: str, body: dict[str, Any]) -> None:
        """Hand `body` to every subscriber."""
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(body)

    @contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[dict[str, Any]]]:
        """A queue receiving every event published while the block runs."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)


class AmqpEventPublisher:
    """Publishes events on the topic exchange, persistent, confirmed by the broker."""

    def __init__(self, connection: AbstractRobustConnection, exchange_name: str) -> None:
        self.connection = connection
        self.exchange_name = exchange_name
        self._exchange: AbstractExchange | None = None

    async def start(self) -> None:
        channel = await self.connection.channel(publisher_confirms=True)
        self._exchange = await declare_events_exchange(channel, self.exchange_name)

    async def publish(self, routing_key: str, body: dict[str, Any]) -> None:
        if self._exchange is None:
            raise RuntimeError("AmqpEventPublisher used before start()")
        message = aio_pika.Message(
            orjson.dumps(body),
            content_type="application/json",
            message_id=body.get("event_id"),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=routing_key,
        )
        await self._exchange.publish(message, routing_key, timeout=PUBLISH_TIMEOUT_S)


class EventRelay:
    """Binds a private queue to the topic exchange and hands what arrives to a hub (the
    coordinator's dashboard streams). Events published while it was away are not replayed:
    the dashboard reloads its tables on reconnection."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        exchange_name: str,
        queue_name: str,
        hub: EventHub,
    ) -> None:
        self.connection = connection
        self.exchange_name = exchange_name
        self.queue_name = queue_name
        self.hub = hub

    async def start(self) -> None:
        channel = await self.connection.channel()
        exchange = await declare_events_exchange(channel, self.exchange_name)
        queue = await channel.declare_queue(self.queue_name, exclusive=True, auto_delete=True)
        for pattern in EVENT_BINDINGS:
            await queue.bind(exchange, pattern)
        await queue.consume(self._on_event, no_ack=True)

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        try:
            body = orjson.loads(message.body)
        except orjson.JSONDecodeError:
            log.warning("ignored an academic event that is not JSON (%d bytes)", len(message.body))
            return
        if isinstance(body, dict):
            await self.hub.publish(message.routing_key or "", body)
