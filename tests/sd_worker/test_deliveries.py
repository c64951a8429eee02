"""A message of several tasks: each task runs as a part of its own, the message is settled once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from sd_common.messages import TASKS_PER_MESSAGE_MAX, TaskMessage
from sd_coordinator.transport import parcels
from sd_worker.deliveries import Deliveries
from sd_worker.processing import RetryLater


class Message:
    """What aiormq delivered, and how it was settled."""

    def __init__(self, body: bytes, tag: int = 1) -> None:
        self.body = body
        self.channel = object()
        self.delivery_tag = tag
        self.message_id: str | None = None
        self.deliveries = 0
        self.settled: list[str] = []

    async def ack(self, multiple: bool = False) -> None:
        self.settled.append("ack")

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        self.settled.append(f"nack requeue={requeue}")

    async def reject(self, requeue: bool = False) -> None:
        self.settled.append(f"reject requeue={requeue}")


class Processor:
    """Runs each task until released; `retry` ones ask to go back to the queue."""

    def __init__(self, retry: frozenset[str] = frozenset()) -> None:
        self.retry = retry
        self.ran: list[str] = []
        self.release = asyncio.Event()

    async def handle(self, task: TaskMessage) -> None:
        self.ran.append(task.task_id)
        await self.release.wait()
        if task.task_id in self.retry:
            raise RetryLater("the coordinator is away")


def batch(n: int) -> tuple[list[TaskMessage], Message]:
    job_id = uuid.uuid4().hex
    tasks = [TaskMessage(task_id=uuid.uuid4().hex, job_id=job_id, type="sleep") for _ in range(n)]
    (parcel,) = parcels(tasks, per_message=n)
    return tasks, Message(parcel.body)


def deliveries(processor: Processor) -> tuple[Deliveries, list[int]]:
    in_flight: list[int] = []
    handler = Deliveries(
        processor,  # type: ignore[arg-type]
        delivery_limit=5,
        on_delivered=lambda _job, held: in_flight.append(held),
        on_done=lambda: None,
    )
    return handler, in_flight


async def handling(handler: Deliveries, message: Message) -> asyncio.Task[None]:
    """The message handed to the worker, its parts started and waiting in the processor."""
    running = asyncio.create_task(handler.on_message(message))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    return running


async def test_each_task_of_a_message_runs_held_on_its_own_and_the_message_is_acked_once() -> None:
    tasks, message = batch(4)
    processor = Processor()
    handler, in_flight = deliveries(processor)
    running = await handling(handler, message)
    assert processor.ran == [t.task_id for t in tasks]
    assert list(handler.held) == [t.task_id for t in tasks]  # reported as held, task by task
    assert handler.per_message == 4 and max(in_flight) == 4
    assert message.settled == []
    processor.release.set()
    await asyncio.wait_for(running, 5)
    assert message.settled == ["ack"]
    assert not handler.held and not handler.inflight


async def test_a_part_to_retry_returns_the_whole_message_once_every_part_has_ended() -> None:
    tasks, message = batch(3)
    processor = Processor(retry=frozenset({tasks[1].task_id}))
    handler, _ = deliveries(processor)
    processor.release.set()
    await asyncio.wait_for(handler.on_message(message), 5)  # type: ignore[arg-type]
    assert processor.ran == [t.task_id for t in tasks]
    assert message.settled == ["nack requeue=True"]


async def test_a_part_finished_elsewhere_is_dropped_and_the_message_acked_with_the_rest() -> None:
    tasks, message = batch(3)
    processor = Processor()
    handler, _ = deliveries(processor)
    running = await handling(handler, message)
    handler.drop_settled([tasks[0].task_id])
    await asyncio.sleep(0.05)
    assert tasks[0].task_id not in handler.held and message.settled == []
    processor.release.set()
    await asyncio.wait_for(running, 5)
    assert message.settled == ["ack"]


def malformed() -> Message:
    _, message = batch(2)
    message.body = message.body.replace(b'"type":"sleep"', b'"type":""', 1)
    return message


def too_many() -> Message:
    return batch(TASKS_PER_MESSAGE_MAX + 1)[1]


@pytest.mark.parametrize("make", [malformed, too_many])
async def test_a_message_of_several_tasks_that_fails_its_check_is_rejected_whole_unrun(
    make: Callable[[], Message],
) -> None:
    message = make()
    processor = Processor()
    handler, _ = deliveries(processor)
    await asyncio.wait_for(handler.on_message(message), 5)  # type: ignore[arg-type]
    assert processor.ran == []
    assert message.settled == ["reject requeue=False"]
