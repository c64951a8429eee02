"""The coordinator's publisher and dead-letter consumer on the real RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import aio_pika
import orjson
import pytest

from sd_common import topology
from sd_common.messages import InputRef, TaskMessage
from sd_common.settings import Settings
from sd_coordinator.broker import AmqpBroker
from sd_coordinator.transport import FIRST_WINDOW, PUBLISH_WINDOW, Unroutable
from support.broker import AMQP_URL


def message(n: int = 0) -> TaskMessage:
    return TaskMessage(
        task_id=uuid.uuid4().hex,
        job_id=uuid.uuid4().hex,
        type="image",
        ops="grayscale",
        input=InputRef(sha256=f"{n:064x}", size=123_456),
    )


class DeadLetters:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.arrived = asyncio.Event()

    async def __call__(self, task_id: str, reason: str) -> None:
        self.seen.append((task_id, reason))
        self.arrived.set()


def settings(queue_name: str, **extra: object) -> Settings:
    return Settings(rabbit_host="127.0.0.1", queue_name=queue_name, **extra)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running_broker(queue_name: str, **extra: object) -> AsyncIterator[AmqpBroker]:
    broker = AmqpBroker(settings(queue_name, **extra), DeadLetters())
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@contextlib.asynccontextmanager
async def work_queue(queue_name: str) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """The work queue as another client sees it."""
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        yield await channel.declare_queue(queue_name, passive=True)


@pytest.mark.parametrize("public_api", [False, True], ids=["beneath aio-pika", "public API"])
async def test_published_tasks_are_small_persistent_and_confirmed(
    queue_name: str, public_api: bool
) -> None:
    async with running_broker(queue_name, rabbit_public_api=public_api) as broker:
        sent = [message(i) for i in range(25)]
        await broker.publish(sent)
        await asyncio.sleep(0.6)  # pending() caches for half a second
        assert await broker.pending() == 25

    async with work_queue(queue_name) as queue:
        got = await queue.get(timeout=5)
        assert got is not None
        assert got.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert got.message_id == sent[0].task_id
        assert (got.type, got.content_type) == ("image", "application/json")
        assert len(got.body) < 1024  # inputs travel by reference, never in the message
        assert TaskMessage.model_validate_json(got.body) == sent[0]
        await got.ack()


@pytest.mark.parametrize("public_api", [False, True], ids=["beneath aio-pika", "public API"])
async def test_a_job_larger_than_its_publish_windows_is_queued_whole_and_in_order(
    queue_name: str, public_api: bool
) -> None:
    sent = [message(i) for i in range(FIRST_WINDOW + PUBLISH_WINDOW + 10)]
    async with running_broker(queue_name, rabbit_public_api=public_api) as broker:
        await broker.publish(sent)

    async with work_queue(queue_name) as queue:
        got = []
        while (incoming := await queue.get(no_ack=True, fail=False, timeout=5)) is not None:
            got.append(incoming.message_id)
        assert got == [m.task_id for m in sent]


@pytest.mark.parametrize("public_api", [False, True], ids=["beneath aio-pika", "public API"])
async def test_a_backup_reaches_its_workers_own_queue_and_a_gone_one_is_unroutable(
    queue_name: str, public_api: bool
) -> None:
    backups = topology.backup_queue_name(queue_name, "alfa", uuid.uuid4().hex)
    sent = message()
    async with running_broker(queue_name, rabbit_public_api=public_api) as broker:
        async with await aio_pika.connect_robust(AMQP_URL) as worker:
            queue = await topology.declare_backup_queue(await worker.channel(), backups)
            await broker.publish([sent], backups)
            got = await queue.get(timeout=5)
            assert got is not None and got.message_id == sent.task_id
            await got.ack()
        # The worker's connection closed and its queue went with it: nothing is routed there,
        # and the publisher hears so instead of a confirm.
        with pytest.raises(Unroutable):
            await broker.publish([sent], backups)
        await asyncio.sleep(0.6)  # pending() caches for half a second
        assert await broker.pending() == 0  # not in the work queue either


async def test_unacked_message_is_redelivered_when_its_consumer_dies(queue_name: str) -> None:
    broker = AmqpBroker(settings(queue_name), DeadLetters())
    await broker.start()
    sent = message()
    await broker.publish([sent])
    await broker.stop()

    first = await aio_pika.connect(AMQP_URL)
    channel = await first.channel()
    queue = await channel.declare_queue(queue_name, passive=True)
    delivery = await queue.get(timeout=5)
    assert delivery is not None and not delivery.redelivered
    await first.close()  # dies holding it, unacked

    second = await aio_pika.connect(AMQP_URL)
    async with second:
        channel = await second.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        again = await queue.get(timeout=5)
        assert again is not None
        assert again.redelivered and again.message_id == sent.task_id
        await again.ack()
        assert await queue.get(fail=False) is None  # acked once: gone for good


async def test_poison_message_dead_letters_at_the_delivery_limit(queue_name: str) -> None:
    dead = DeadLetters()
    broker = AmqpBroker(settings(queue_name, delivery_limit=2), dead)
    await broker.start()
    try:
        sent = message()
        await broker.publish([sent])
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(queue_name, passive=True)
            for _ in range(3):  # delivered, returned, delivered, returned, delivered, returned
                delivery = await queue.get(timeout=5, fail=False)
                if delivery is None:
                    break
                await delivery.nack(requeue=True)
        await asyncio.wait_for(dead.arrived.wait(), timeout=15)
        task_id, reason = dead.seen[0]
        assert task_id == sent.task_id
        assert "delivery limit" in reason
    finally:
        await broker.stop()


async def test_rejected_malformed_message_reaches_the_dead_letter_queue(queue_name: str) -> None:
    dead = DeadLetters()
    broker = AmqpBroker(settings(queue_name), dead)
    await broker.start()
    try:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel()
            task_id = uuid.uuid4().hex
            body = orjson.dumps({"task_id": task_id, "nonsense": True})
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue_name)
            queue = await channel.declare_queue(queue_name, passive=True)
            delivery = await queue.get(timeout=5)
            assert delivery is not None
            await delivery.reject(requeue=False)
        await asyncio.wait_for(dead.arrived.wait(), timeout=15)
        assert dead.seen[0][0] == task_id
    finally:
        await broker.stop()
