"""RabbitMQ names and declarations of the academic service, defined once for both sides."""

from __future__ import annotations

from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from sd_common.settings import Settings

EVENT_BINDINGS = ("profesor.*", "grupo.*")


def db_path(settings: Settings) -> Path:
    """Where the service keeps its SQLite file."""
    return settings.academic_db or settings.data_dir / "academico.sqlite3"


def request_queue_name(settings: Settings) -> str:
    """The queue of commands: ACADEMIC_QUEUE, or derived from the cluster's QUEUE_NAME (so
    that clusters sharing a broker, like tests, each talk to their own service)."""
    return settings.academic_queue or f"{settings.queue_name}.academico.rpc"


def events_exchange_name(settings: Settings) -> str:
    """The topic exchange of changes: ACADEMIC_EXCHANGE, or derived from QUEUE_NAME."""
    return settings.academic_exchange or f"{settings.queue_name}.academico.events"


async def declare_request_queue(channel: AbstractChannel, name: str) -> AbstractQueue:
    """The queue commands wait in (durable, so its bindings and consumers outlive a broker
    restart; the requests themselves are transient and expire with the caller's timeout)."""
    return await channel.declare_queue(name, durable=True)


async def declare_events_exchange(channel: AbstractChannel, name: str) -> AbstractExchange:
    """The topic exchange every change is published on (`profesor.created`, `grupo.deleted`…)."""
    return await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
