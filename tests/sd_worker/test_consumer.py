"""The worker's consumer on the real broker: deliveries without aio-pika's per-message wrapper,
settled on their own channel, and consuming again after the connection is cut or the broker
cancels the consumer."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from sd_common import topology
from sd_common.settings import Settings
from sd_worker.consumers import Consumers
from sd_worker.transport import Consumer, Delivery
from support.broker import AMQP_URL
from support.rabbitctl import close_connections_named


def queues_remembered(channel: object) -> int:
    """Queues a robust channel keeps to declare again after a reconnection."""
    return sum(len(queues) for queues in channel._queues.values())  # type: ignore[attr-defined]


class Recorder:
    """Somewhere for a Consumer to hand its deliveries."""

    def __init__(self) -> None:
        self.bodies: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_message(self, message: Delivery) -> None:
        await message.ack()
        await self.bodies.put(message.body)


async def publish(queue_name: str, *bodies: bytes) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for body in bodies:
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue_name,
            )


async def ready_and_unacked(queue_name: str) -> tuple[int, int]:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        "list_queues",
        "name",
        "messages_ready",
        "messages_unacknowledged",
        "-q",
        "--no-table-headers",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    for line in out.decode().splitlines():
        name, ready, unacked = line.split("\t")
        if name == queue_name:
            return int(ready), int(unacked)
    raise AssertionError(f"no queue {queue_name}")


@pytest.mark.parametrize("public_api", [False, True], ids=["beneath aio-pika", "public API"])
async def test_a_consumer_takes_deliveries_again_after_its_connection_is_cut(
    queue_name: str, public_api: bool
) -> None:
    settings = Settings(
        rabbit_host="127.0.0.1", queue_name=queue_name, rabbit_public_api=public_api
    )  # type: ignore[call-arg]
    worker = Recorder()
    name = f"sd-test {queue_name}"
    connection = await topology.connect(settings, name)
    try:
        consumer = Consumer(await connection.channel(), settings, worker.on_message)
        await consumer.start(prefetch=4)
        await publish(queue_name, b"before")
        assert await asyncio.wait_for(worker.bodies.get(), 10) == b"before"

        assert close_connections_named(name) == 1
        await publish(queue_name, b"after")  # waits in the queue while the worker reconnects
        assert await asyncio.wait_for(worker.bodies.get(), 30) == b"after"
        assert consumer.tag is not None
        deadline = asyncio.get_running_loop().time() + 10
        while await ready_and_unacked(queue_name) != (0, 0):  # acked on the new channel
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.2)
    finally:
        await connection.close()


@pytest.mark.parametrize("public_api", [False, True], ids=["beneath aio-pika", "public API"])
async def test_a_consumer_the_broker_cancels_declares_its_queue_again_and_consumes(
    queue_name: str, public_api: bool
) -> None:
    """Deleting the queue makes RabbitMQ cancel its consumers (Basic.Cancel). The consumer
    declares the queue again and consumes from it, instead of sitting idle for ever."""
    settings = Settings(
        rabbit_host="127.0.0.1", queue_name=queue_name, rabbit_public_api=public_api
    )  # type: ignore[call-arg]
    worker = Recorder()
    connection = await topology.connect(settings, f"sd-test {queue_name}")
    try:
        consumer = Consumer(await connection.channel(), settings, worker.on_message)
        await consumer.start(prefetch=4)
        first_tag = consumer.tag
        await publish(queue_name, b"before")
        assert await asyncio.wait_for(worker.bodies.get(), 10) == b"before"

        admin = await aio_pika.connect(AMQP_URL)
        async with admin:
            await (await admin.channel()).queue_delete(queue_name)
        deadline = asyncio.get_running_loop().time() + 15
        while consumer.tag in (first_tag, None):  # consuming again, under a new tag
            assert asyncio.get_running_loop().time() < deadline, "never consumed again"
            await asyncio.sleep(0.1)

        await publish(queue_name, b"after")
        assert await asyncio.wait_for(worker.bodies.get(), 10) == b"after"
        # Declared again on the broker, not once more in the channel's own list.
        assert queues_remembered(consumer.channel) == 2  # work and dead-letter queues, once each

        await consumer.pause()  # a paused consumer stays paused
        assert consumer.tag is None
        await publish(queue_name, b"while paused")
        await asyncio.sleep(0.5)
        assert worker.bodies.empty()
        assert (
            await topology.ready_messages(consumer.channel, queue_name, settings.delivery_limit)
            == 1
        )
    finally:
        await connection.close()


async def test_a_retuned_consumer_declares_its_queues_once(queue_name: str) -> None:
    """Each new prefetch starts the consumer again. The robust channel keeps every queue
    declared on it and declares each again after a reconnection, so a declare per re-tune
    piled up two queues (work and dead letters) per re-tune, for ever."""
    settings = Settings(rabbit_host="127.0.0.1", queue_name=queue_name)  # type: ignore[call-arg]
    worker = Recorder()
    connection = await topology.connect(settings, f"sd-test {queue_name}")
    try:
        channel = await connection.channel()
        consumer = Consumer(channel, settings, worker.on_message)
        for prefetch in range(2, 12):
            await consumer.pause()
            await consumer.start(prefetch)
        assert queues_remembered(channel) == 2  # work and dead-letter queues, once each
        await publish(queue_name, b"still consuming")
        assert await asyncio.wait_for(worker.bodies.get(), 10) == b"still consuming"
    finally:
        await connection.close()


async def test_a_smaller_prefetch_waits_until_the_worker_holds_half_its_window(
    queue_name: str,
) -> None:
    """The broker gives a new consumer its whole prefetch whatever the worker still holds from
    the one it replaced: re-consuming at once let a worker hold both windows, and at a job's
    start a few re-tunes took most of the job to one worker."""
    settings = Settings(rabbit_host="127.0.0.1", queue_name=queue_name)  # type: ignore[call-arg]
    working: list[asyncio.Event] = []
    arrived = asyncio.Condition()

    async def work(message: Delivery) -> None:
        done = asyncio.Event()
        working.append(done)
        async with arrived:
            arrived.notify_all()
        await done.wait()
        await message.ack()

    async def holding(count: int) -> None:  # deliveries so far, settled or not
        async with arrived:
            await arrived.wait_for(lambda: len(working) >= count)

    consumers = Consumers(settings, work, lambda: None)
    connection = await topology.connect(settings, f"sd-test {queue_name}")
    try:
        await consumers.start(connection, 1, 10)
        await publish(queue_name, *(b"%d" % i for i in range(40)))
        await asyncio.wait_for(holding(10), 10)
        await asyncio.wait_for(consumers.apply(1, 8), 1)  # the tuner is not kept waiting
        await asyncio.sleep(0.5)
        assert (len(working), consumers.held()) == (10, 10)  # nothing more while it holds 10
        for done in working[:6]:
            done.set()
        await asyncio.wait_for(holding(10 + 8), 5)  # 4 held, at most half of 8: consuming again
        await asyncio.sleep(0.3)
        assert (len(working), consumers.held()) == (18, 4 + 8)
        # A larger prefetch, which the pool may be waiting for, goes at once: 12 held, over
        # half of 20.
        await asyncio.wait_for(consumers.apply(1, 20), 1)
        await asyncio.wait_for(holding(18 + 20), 10)
    finally:
        for done in working:
            done.set()
        await consumers.stop()
        await connection.close()


async def test_a_re_consume_that_fails_is_tried_again_at_the_next_re_tune(
    queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A smaller prefetch re-consumes in the background; if that fails (the broker went away
    for a moment), the consumers must not stay paused for good."""
    settings = Settings(rabbit_host="127.0.0.1", queue_name=queue_name)  # type: ignore[call-arg]
    worker = Recorder()
    consumers = Consumers(settings, worker.on_message, lambda: None)
    connection = await topology.connect(settings, f"sd-test {queue_name}")
    try:
        await consumers.start(connection, 1, 10)
        (consumer,) = consumers.active
        real_start = consumer.start
        failing = True

        async def start(prefetch: int) -> None:
            if failing:
                raise ConnectionError("broker gone for a moment")
            await real_start(prefetch)

        monkeypatch.setattr(consumer, "start", start)
        await consumers.apply(1, 4)  # smaller: consumes again in the background, and fails
        await asyncio.sleep(0.3)
        assert consumers.start_failed and consumer.tag is None
        failing = False
        await consumers.apply(1, 4)  # the tuner's next look, with the same numbers
        await publish(queue_name, b"consuming again")
        assert await asyncio.wait_for(worker.bodies.get(), 10) == b"consuming again"
        assert not consumers.start_failed
    finally:
        await consumers.stop()
        await connection.close()
