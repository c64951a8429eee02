"""The coordinator's one seam beneath aio-pika's public API: how task messages are published.

With RABBIT_PUBLIC_API=false (the default) a job's messages go out through the aiormq channel
beneath aio-pika's, a window at a time; with true, through aio-pika's `Exchange.publish` only,
the plain path, kept for comparison (benchmarks/ablate.py) and for an aio-pika release that
changes what lies beneath.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Sequence
from typing import NamedTuple, cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel

from sd_common.messages import BATCH_TYPE, TaskMessage

# Messages published at once, each window confirmed before the next. A job's first windows are
# small: the quorum queue delivers a message once the batch it came in is committed, so two
# messages reach a worker while the rest are still being published.
PUBLISH_WINDOW = 1000
FIRST_WINDOWS = (2, 62)
# A large publish puts up to this many tasks in one message (a JSON array), which divides the
# per-message cost of AMQP (publish, confirm, delivery, ack, the quorum queue's log) among
# them, while keeping at least MESSAGES_MIN messages, so several workers still share a job.
TASKS_PER_MESSAGE = 8
MESSAGES_MIN = 64
# A batch of files into an open job is one of many (sd-submit sends up to 100 files at a time):
# the job's messages add up over its batches, so one batch keeps fewer of its own.
BATCH_MESSAGES_MIN = 8


class Parcel(NamedTuple):
    """One message on the queue: one task (a JSON object) or several (a JSON array)."""

    body: bytes
    message_id: str  # the task's id, or the first task's for several
    type: str  # the task type, or "batch"


def tasks_per_message(tasks: int, messages_min: int = MESSAGES_MIN) -> int:
    """How many tasks share a message in a publish of `tasks` tasks that keeps at least
    `messages_min` messages."""
    return max(1, min(TASKS_PER_MESSAGE, tasks // messages_min))


def body(message: TaskMessage) -> bytes:
    """One task's bytes on the queue: its JSON."""
    return message.model_dump_json(exclude_defaults=False).encode()


def parcels(messages: Sequence[TaskMessage], per_message: int = 1) -> list[Parcel]:
    """The messages to publish for `messages`, in order: up to `per_message` consecutive tasks
    of one job to a message."""
    if per_message <= 1:
        return [Parcel(body(m), m.task_id, m.type) for m in messages]
    out = []
    group: list[TaskMessage] = []
    for m in [*messages, None]:
        if group and (m is None or len(group) == per_message or m.job_id != group[0].job_id):
            joined = b"[" + b",".join(map(body, group)) + b"]"
            out.append(Parcel(joined, group[0].task_id, BATCH_TYPE))
            group = []
        if m is not None:
            group.append(m)
    return out


def properties(parcel: Parcel) -> aiormq.spec.Basic.Properties:
    """What `aio_pika.Message(body, delivery_mode=PERSISTENT, ...)` would send."""
    return aiormq.spec.Basic.Properties(
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT.value,
        message_id=parcel.message_id,
        message_type=parcel.type,
    )


def use_fast_path() -> None:
    """Stands in for nothing public: aiormq queues at most FRAME_BUFFER_SIZE frames for a
    connection's writer, so a window's publishes would wait for it and leave a few at a time.
    A class attribute read by every connection aiormq opens, also after a reconnection."""
    aiormq.Connection.FRAME_BUFFER_SIZE = max(aiormq.Connection.FRAME_BUFFER_SIZE, PUBLISH_WINDOW)


def windows(parcels: Sequence[Parcel]) -> list[Sequence[Parcel]]:
    """The messages in the order they are published: FIRST_WINDOWS, then PUBLISH_WINDOW each."""
    sizes = itertools.chain(FIRST_WINDOWS, itertools.repeat(PUBLISH_WINDOW))
    out: list[Sequence[Parcel]] = []
    start = 0
    while start < len(parcels):
        size = next(sizes)
        out.append(parcels[start : start + size])
        start += size
    return out


class Unroutable(Exception):
    """The broker returned messages: the queue they were published to does not exist."""


async def publish_window(
    channel: AbstractChannel, queue_name: str, window: Sequence[Parcel], *, fast: bool
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
                p.body,
                routing_key=queue_name,
                properties=properties(p),
                mandatory=True,
                wait=False,
            )
            for p in window
        ]
    else:
        exchange = channel.default_exchange
        sends = [
            exchange.publish(
                aio_pika.Message(
                    p.body,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=p.message_id,
                    content_type="application/json",
                    type=p.type,
                ),
                routing_key=queue_name,
                mandatory=True,
            )
            for p in window
        ]
    confirmations = await asyncio.gather(*sends)
    # Either path answers a returned message with the message instead of a Basic.Ack.
    returned = sum(not isinstance(c, aiormq.spec.Basic.Ack) for c in confirmations)
    if returned:
        raise Unroutable(f"{returned} message(s) returned: no queue {queue_name!r}")
