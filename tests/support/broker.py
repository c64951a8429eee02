"""Real-RabbitMQ helpers for tests: unique queue names and clean-up."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import aio_pika

from sd_common.topology import failed_queue_name, work_queue_arguments

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def unique_queue() -> str:
    """A queue name no other test uses."""
    return f"sdtest-{uuid.uuid4().hex[:12]}"


async def delete_queues(queue_name: str) -> None:
    """Delete a test's work queue and its dead-letter queue (and the academic service's queue
    and exchange, whose default names derive from it)."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        for name in (queue_name, failed_queue_name(queue_name), f"{queue_name}.academico.rpc"):
            channel = await connection.channel()
            try:
                await channel.queue_delete(name)
            except aio_pika.exceptions.AMQPError:
                pass
        channel = await connection.channel()
        try:
            await channel.exchange_delete(f"{queue_name}.academico.events")
        except aio_pika.exceptions.AMQPError:
            pass


def delete_queues_sync(queue_name: str) -> None:
    """`delete_queues` for synchronous fixtures. Runs in a thread of its own: this thread may
    already have a running event loop (Playwright's sync API keeps one while the browser is up)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, delete_queues(queue_name)).result()


async def queue_counts(queue_name: str, delivery_limit: int = 5) -> tuple[int, int]:
    """(ready messages in the work queue, messages in its dead-letter queue)."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        # Passive declares answer message_count 0 here; same-argument declares count right.
        work = await channel.declare_queue(
            queue_name, durable=True, arguments=work_queue_arguments(queue_name, delivery_limit)
        )
        failed = await channel.declare_queue(
            failed_queue_name(queue_name), durable=True, arguments={"x-queue-type": "quorum"}
        )
        return (
            int(work.declaration_result.message_count or 0),
            int(failed.declaration_result.message_count or 0),
        )


async def delete_queue_and_exchange(queue_name: str, exchange_name: str) -> None:
    """Delete a test's queue and exchange (the academic service's request queue and events)."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue_name)
        await channel.exchange_delete(exchange_name)


def delete_queue_and_exchange_sync(queue_name: str, exchange_name: str) -> None:
    """`delete_queue_and_exchange` from synchronous code, in a thread of its own (see above)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, delete_queue_and_exchange(queue_name, exchange_name)).result()
