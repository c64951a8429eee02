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
from sd_common.messages import BATCH_TYPE, InputRef, TaskBatch, TaskMessage
from sd_common.settings import Settings
from sd_coordinator.broker import AmqpBroker
from sd_coordinator.transport import (
    FIRST_WINDOWS,
    MESSAGES_MIN,
    PUBLISH_WINDOW,
    TASKS_PER_MESSAGE,
    Unroutable,
    parcels,
    windows,
)
from support.broker import AMQP_URL, queue_counts


def message(n: int = 0, job_id: str | None = None) -> TaskMessage:
    return TaskMessage(
        task_id=uuid.uuid4().hex,
        job_id=job_id or uuid.uuid4().hex,
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


def job(n: int) -> list[TaskMessage]:
    job_id = uuid.uuid4().hex
    return [message(i, job_id) for i in range(n)]


async def queued(queue_name: str) -> list[list[TaskMessage]]:
    """Every message in the queue, taken off it: the tasks each one holds."""
    out = []
    async with work_queue(queue_name) as queue:
        while (incoming := await queue.get(no_ack=True, fail=False, timeout=5)) is not None:
            if incoming.type == BATCH_TYPE:
                tasks = TaskBatch.validate_json(incoming.body)
                assert incoming.message_id == tasks[0].task_id
            else:
                tasks = [TaskMessage.model_validate_json(incoming.body)]
            out.append(tasks)
    return out


@pytest.mark.parametrize("public_api", [False, True], ids=["beneath aio-pika", "public API"])
async def test_a_large_job_goes_several_tasks_a_message_whole_and_in_order(
    queue_name: str, public_api: bool
) -> None:
    sent = job((sum(FIRST_WINDOWS) + PUBLISH_WINDOW) * TASKS_PER_MESSAGE + 10)
    async with running_broker(queue_name, rabbit_public_api=public_api) as broker:
        await broker.publish(sent)
        await asyncio.sleep(0.6)  # pending() caches for half a second
        assert await broker.pending() == len(sent)  # tasks, not messages

    messages = await queued(queue_name)
    assert [t for tasks in messages for t in tasks] == sent
    assert [len(tasks) for tasks in messages[:-1]] == [TASKS_PER_MESSAGE] * (len(messages) - 1)
    assert len(messages) == -(-len(sent) // TASKS_PER_MESSAGE)


def test_a_jobs_first_messages_go_out_in_small_windows_then_a_thousand_at_a_time() -> None:
    # Each window is confirmed before the next: the first two messages reach a worker while
    # the rest are published.
    assert [len(w) for w in windows(parcels(job(2000), 1))] == [2, 62, 1000, 936]
    assert [len(w) for w in windows(parcels(job(2), 1))] == [2]
    assert [len(w) for w in windows(parcels(job(1), 1))] == [1]


async def test_a_publish_keeps_enough_messages_for_several_workers_and_one_job_each(
    queue_name: str,
) -> None:
    small, mixed = job(MESSAGES_MIN * 2), job(50) + job(50)
    async with running_broker(queue_name) as broker:
        await broker.publish(small)
        await broker.publish(mixed)
        await broker.publish(job(MESSAGES_MIN - 1))

    messages = await queued(queue_name)
    sizes = [len(tasks) for tasks in messages]
    # 128 tasks: two a message, so 64 messages; 100 tasks: one a message (under 128).
    assert sizes == [2] * MESSAGES_MIN + [1] * 100 + [1] * (MESSAGES_MIN - 1)
    assert all(len({t.job_id for t in tasks}) == 1 for tasks in messages)


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


async def test_a_message_of_several_tasks_at_the_delivery_limit_comes_back_one_task_a_message(
    queue_name: str,
) -> None:
    """One of its tasks may be what makes a worker die each time: split, only that one would
    end failed; the others run."""
    dead = DeadLetters()
    broker = AmqpBroker(settings(queue_name, delivery_limit=1), dead)
    await broker.start()
    try:
        sent = job(5)
        await broker.publish(sent, per_message=5)
        async with work_queue(queue_name) as queue:
            for _ in range(2):  # delivered, returned, delivered, returned: the limit
                delivery = await queue.get(timeout=5)
                assert delivery is not None and delivery.type == BATCH_TYPE
                await delivery.nack(requeue=True)
        for _ in range(150):  # the coordinator publishes them again: up to 15 s
            if (await queue_counts(queue_name, delivery_limit=1))[0] == len(sent):
                break
            await asyncio.sleep(0.1)
        assert await queued(queue_name) == [[task] for task in sent]
        assert dead.seen == []  # none of them failed
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
