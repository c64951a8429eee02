"""Coalesced acks on the real broker: fewer frames, and never an ack for a message still being
worked on (checked by what RabbitMQ redelivers once the channel closes)."""

from __future__ import annotations

import asyncio

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from sd_common.topology import work_queue_arguments
from sd_worker.acks import AckCoalescer
from support.broker import AMQP_URL

N = 40


Held = tuple[aio_pika.abc.AbstractConnection, list[AbstractIncomingMessage]]


async def deliveries(queue_name: str, n: int = N) -> Held:
    """Publish n messages, then hold all n deliveries unacked on one channel."""
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    queue = await channel.declare_queue(
        queue_name, durable=True, arguments=work_queue_arguments(queue_name, 5)
    )
    for i in range(n):
        await channel.default_exchange.publish(
            aio_pika.Message(str(i).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue_name,
        )
    await channel.set_qos(prefetch_count=n)
    got: list[AbstractIncomingMessage] = []
    full = asyncio.Event()

    async def on_message(message: AbstractIncomingMessage) -> None:
        got.append(message)
        if len(got) == n:
            full.set()

    await queue.consume(on_message)
    await asyncio.wait_for(full.wait(), 10)
    return connection, got


async def redelivered(queue_name: str) -> list[int]:
    """Bodies RabbitMQ hands out again (the unacked ones, once their channel closed)."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(
            queue_name, durable=True, arguments=work_queue_arguments(queue_name, 5)
        )
        bodies = []
        while (message := await queue.get(fail=False, timeout=5)) is not None:
            bodies.append(int(message.body))
            await message.ack()
        return sorted(bodies)


async def test_a_burst_of_acks_goes_out_as_one_frame(queue_name: str) -> None:
    connection, got = await deliveries(queue_name)
    acks = AckCoalescer()
    await asyncio.gather(*(acks.ack(m) for m in reversed(got)))  # any order within the burst
    assert acks.frames == 1
    await connection.close()
    assert await redelivered(queue_name) == []


async def test_a_message_still_in_work_is_never_covered_by_a_coalesced_ack(
    queue_name: str,
) -> None:
    connection, got = await deliveries(queue_name)
    acks = AckCoalescer()
    slow = got[10]  # still being worked on: the ones after it are acked alone
    await asyncio.gather(*(acks.ack(m) for m in got if m is not slow))
    assert acks.frames == 1 + (N - 11)
    await acks.settle_alone(got[10], requeue=True)  # the slow one fails transiently
    await connection.close()
    assert await redelivered(queue_name) == [10]


async def test_bursts_after_a_nack_still_coalesce_past_it(queue_name: str) -> None:
    connection, got = await deliveries(queue_name)
    acks = AckCoalescer()
    await acks.settle_alone(got[0], requeue=False, reject=True)  # malformed: dead-lettered
    await asyncio.gather(*(acks.ack(m) for m in got[1:20]))
    await asyncio.gather(*(acks.ack(m) for m in got[20:]))
    assert acks.frames == 2
    await connection.close()
    assert await redelivered(queue_name) == []


async def test_acks_on_a_closed_channel_raise_so_the_worker_can_log_the_redelivery(
    queue_name: str,
) -> None:
    connection, got = await deliveries(queue_name, 3)
    acks = AckCoalescer()
    await connection.close()
    results = await asyncio.gather(*(acks.ack(m) for m in got), return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results)
    assert await redelivered(queue_name) == [0, 1, 2]
