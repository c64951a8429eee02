"""The coordinator's one seam beneath aio-pika's public API: how task messages are published.

With RABBIT_PUBLIC_API=false (the default) a job's messages go out through the aiormq channel
beneath aio-pika's, a window at a time; with true, through aio-pika's `Exchange.publish` only,
the plain path, kept for comparison (benchmarks/ablate.py) and for an aio-pika release that
changes what lies beneath.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel

from sd_common.messages import TaskMessage

# Messages published at once; the first window of a job is small so its first tasks leave at once.
PUBLISH_WINDOW = 1000
FIRST_WINDOW = 64


def body(message: TaskMessage) -> bytes:
    """The message's bytes on the queue: its JSON."""
    return message.model_dump_json(exclude_defaults=False).encode()


def properties(message: TaskMessage) -> aiormq.spec.Basic.Properties:
    """What `aio_pika.Message(body, delivery_mode=PERSISTENT, ...)` would send."""
    return aiormq.spec.Basic.Properties(
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT.value,
        message_id=message.task_id,
        message_type=message.type,
    )


def use_fast_path() -> None:
    """Stands in for nothing public: aiormq queues at most FRAME_BUFFER_SIZE frames for a
    connection's writer, so a window's publishes would wait for it and leave a few at a time.
    A class attribute read by every connection aiormq opens, also after a reconnection."""
    aiormq.Connection.FRAME_BUFFER_SIZE = max(aiormq.Connection.FRAME_BUFFER_SIZE, PUBLISH_WINDOW)


def windows(messages: Sequence[TaskMessage]) -> list[Sequence[TaskMessage]]:
    """The messages in the order they are published: FIRST_WINDOW, then PUBLISH_WINDOW each."""
    out: list[Sequence[TaskMessage]] = []
    start, size = 0, FIRST_WINDOW
    while start < len(messages):
        out.append(messages[start : start + size])
        start, size = start + size, PUBLISH_WINDOW
    return out


class Unroutable(Exception):
    """The broker returned messages: the queue they were published to does not exist."""


async def publish_window(
    channel: AbstractChannel, queue_name: str, window: Sequence[TaskMessage], *, fast: bool
) -> None:
    """Publish persistent messages to the queue; return once the broker confirmed each one
    (a Basic.Nack raises DeliveryError either way; a return, Unroutable)."""
    if fast:
        # Stands in for `Exchange.publish`, which holds the channel's lock until its frame is
        # written (one message per loop turn); with `wait=False` aiormq queues every frame of
        # the window at once. Its abstract channel does not declare `wait`; its class does.
        underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
        sends: list[Awaitable[object]] = [
            underlay.basic_publish(
                body(m),
                routing_key=queue_name,
                properties=properties(m),
                mandatory=True,
                wait=False,
            )
            for m in window
        ]
    else:
        exchange = channel.default_exchange
        sends = [
            exchange.publish(
                aio_pika.Message(
                    body(m),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=m.task_id,
                    content_type="application/json",
                    type=m.type,
                ),
                routing_key=queue_name,
                mandatory=True,
            )
            for m in window
        ]
    confirmations = await asyncio.gather(*sends)
    # Either path answers a returned message with the message instead of a Basic.Ack.
    returned = sum(not isinstance(c, aiormq.spec.Basic.Ack) for c in confirmations)
    if returned:
        raise Unroutable(f"{returned} message(s) returned: no queue {queue_name!r}")
