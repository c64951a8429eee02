"""RabbitMQ names and declarations, defined once for the coordinator, the workers and the tests."""

from __future__ import annotations

import errno
import logging
import socket
import ssl
from typing import Any, NamedTuple

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
    TimeoutType,
)
from aiormq.exceptions import ChannelAccessRefused

from sd_common.settings import Settings

FAILED_SUFFIX = ".failed"


def failed_queue_name(queue_name: str) -> str:
    """Name of the dead-letter queue of `queue_name` (Dramatiq-style derived name)."""
    return f"{queue_name}{FAILED_SUFFIX}"


def work_queue_arguments(queue_name: str, delivery_limit: int) -> dict[str, Any]:
    """Arguments of the work queue: quorum, bounded redeliveries, dead letters to `.failed`."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": failed_queue_name(queue_name),
    }


async def declare_work_queue(
    channel: AbstractChannel, queue_name: str, delivery_limit: int, *, robust: bool = True
) -> AbstractQueue:
    """Declare the dead-letter queue and the work queue (idempotent). A robust channel keeps
    each queue declared on it and declares it again after a reconnection; `robust=False`
    declares on the broker only (the queues are already in the channel's list)."""
    await declare_failed_queue(channel, queue_name, robust=robust)
    return await channel.declare_queue(
        queue_name,
        durable=True,
        arguments=work_queue_arguments(queue_name, delivery_limit),
        **_robust(channel, robust),
    )


def _robust(channel: AbstractChannel, robust: bool) -> Any:
    """`robust=` for a robust channel's declare_queue; a plain channel (a check) takes none."""
    return {"robust": robust} if isinstance(channel, AbstractRobustChannel) else {}


BACKUP_INFIX = ".backup."


def backup_queue_prefix(queue_name: str) -> str:
    """What every worker's backup queue name starts with (the coordinator routes to no other)."""
    return f"{queue_name}{BACKUP_INFIX}"


def backup_queue_name(queue_name: str, node_name: str, session: str) -> str:
    """One worker's own queue for the backup runs the coordinator sends it by name."""
    return f"{backup_queue_prefix(queue_name)}{node_name}.{session[:12]}"


async def declare_backup_queue(
    channel: AbstractChannel, name: str, *, robust: bool = True
) -> AbstractQueue:
    """Declare a worker's backup queue: exclusive to its connection, gone with it (the
    coordinator publishes backups again when a worker that held them goes silent)."""
    return await channel.declare_queue(  # type: ignore[call-arg]
        name, exclusive=True, auto_delete=True, robust=robust
    )


async def ready_messages(channel: AbstractChannel, queue_name: str, delivery_limit: int) -> int:
    """How many messages of the work queue are ready for delivery, straight from the broker."""
    return (await queue_counts(channel, queue_name, delivery_limit)).ready


class QueueCounts(NamedTuple):
    """The broker's own counters of the work queue: a constant-size look at the cluster."""

    ready: int  # messages waiting for a consumer
    consumers: int  # consumers on the queue now (paused and stopped workers have none)


async def queue_counts(
    channel: AbstractChannel, queue_name: str, delivery_limit: int
) -> QueueCounts:
    """Ready messages and consumers of the work queue, in one round trip to the broker.

    A passive declare answers message_count 0 (and consumer_count 0) here (aio-pika 10 /
    RabbitMQ 3.10); re-declaring with the same arguments is idempotent and counts right.
    `robust=False`: a probe is not a queue the channel should re-declare after a reconnection."""
    queue = await channel.declare_queue(  # type: ignore[call-arg]
        queue_name,
        durable=True,
        robust=False,
        arguments=work_queue_arguments(queue_name, delivery_limit),
    )
    result = queue.declaration_result
    return QueueCounts(int(result.message_count or 0), int(result.consumer_count or 0))


async def declare_failed_queue(
    channel: AbstractChannel, queue_name: str, *, robust: bool = True
) -> AbstractQueue:
    """Declare (idempotently) and return the dead-letter queue of `queue_name`."""
    return await channel.declare_queue(
        failed_queue_name(queue_name),
        durable=True,
        arguments={"x-queue-type": "quorum"},
        **_robust(channel, robust),
    )


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(settings.rabbit_ca_file) if settings.rabbit_ca_file else None
    )
    if settings.rabbit_cert_file:
        context.load_cert_chain(
            str(settings.rabbit_cert_file),
            str(settings.rabbit_key_file) if settings.rabbit_key_file else None,
        )
    return context


def broker_display(settings: Settings) -> str:
    """Where the broker is, for log lines (never the password)."""
    scheme = "amqps" if settings.rabbit_tls else "amqp"
    return (
        f"{scheme}://{settings.rabbit_user}@{settings.rabbit_host}:{settings.rabbit_port}"
        f"{settings.rabbit_vhost}"
    )


RECONNECT_INTERVAL_S = 1.0
CONNECT_TIMEOUT_S = 10  # a connection attempt that gets no answer in time fails


def _connection_options(settings: Settings) -> dict[str, Any]:
    if settings.rabbit_host is None:
        raise RuntimeError("RABBIT_HOST is not set: there is no broker to connect to")
    return {
        "host": settings.rabbit_host,
        "port": settings.rabbit_port,
        "login": settings.rabbit_user,
        "password": settings.rabbit_pass,
        "virtualhost": settings.rabbit_vhost,
        "ssl": settings.rabbit_tls,
        "ssl_context": _ssl_context(settings) if settings.rabbit_tls else None,
        "timeout": CONNECT_TIMEOUT_S,
        # Negotiated with the broker (the lower of the two wins): a worker whose link is cut
        # gives its unacked tasks back after ~2 intervals, not the broker's default minutes.
        **({"heartbeat": settings.rabbit_heartbeat_s} if settings.rabbit_heartbeat_s else {}),
    }


def connection_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of `aio_pika.connect` for the configured broker."""
    return _connection_options(settings)


class _RobustConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection, closed when its first connect is cancelled or fails.
    aio-pika's own keeps connecting in a task of its own: a worker stopped while RabbitMQ had
    not answered yet said "stopped" and then never exited."""

    _was_connected = False

    async def connect(self, timeout: TimeoutType = None) -> None:  # noqa: ASYNC109 (its base)
        try:
            await super().connect(timeout)
        except BaseException:
            if not self._was_connected:  # a later reconnect() keeps aio-pika's own ways
                await self.close()
            raise
        self._was_connected = True


async def connect(settings: Settings, connection_name: str) -> AbstractRobustConnection:
    """Open a robust, named connection to the configured broker."""
    return await aio_pika.connect_robust(
        connection_class=_RobustConnection,
        **_connection_options(settings),
        client_properties={"connection_name": connection_name},
        # aio-pika retries every 5 s by default; a restarted broker should be used again at once.
        reconnect_interval=RECONNECT_INTERVAL_S,
    )


def _why(exc: BaseException) -> str:
    """What a failed connection attempt means, in words (aiormq wraps socket errors in its own
    AMQPConnectionError, errno kept; a timeout has no words at all)."""
    code = getattr(exc, "errno", None)
    if code == errno.ECONNREFUSED:
        return "connection refused: nothing listens on that port there"
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"no route to that host ({exc}): is the VPN (Tailscale) up on both machines?"
    if isinstance(exc, socket.gaierror) or (isinstance(code, int) and code < 0):
        return f"unknown host ({getattr(exc, 'strerror', None) or exc})"
    if isinstance(exc, TimeoutError):
        return (
            f"no answer within {CONNECT_TIMEOUT_S} s: a firewall dropping packets, or something "
            "other than RabbitMQ on that port"
        )
    return str(exc) or type(exc).__name__


class BrokerUnavailable(Exception):
    """The broker cannot be used; the message says what to check."""


async def check_broker(settings: Settings, *, work_queue: bool = True) -> None:
    """Connect once, plainly, to turn a bad RABBIT_* setting into one actionable line; with
    `work_queue`, also declare the work queue and its dead letters (as the coordinator and the
    workers do), so that a user without permissions on them, or a queue of that name made
    with other arguments, is one line too and not a traceback at start-up."""
    where = broker_display(settings)
    quiet = logging.getLogger("aiormq.connection")
    level, quiet.level = quiet.level, logging.CRITICAL  # the line below says it better
    try:
        connection = await aio_pika.connect(**_connection_options(settings))
    except aio_pika.exceptions.ProbableAuthenticationError as exc:
        raise BrokerUnavailable(
            f"RabbitMQ at {where} refused user {settings.rabbit_user!r}: check RABBIT_USER and "
            "RABBIT_PASS (guest only works from localhost: create a user, see README)"
        ) from exc
    except (aio_pika.exceptions.AMQPError, OSError, TimeoutError, ssl.SSLError) as exc:
        raise BrokerUnavailable(
            f"cannot reach RabbitMQ at {where} ({_why(exc)}): is it running, "
            f"is port {settings.rabbit_port} open from here, is RABBIT_HOST right?"
        ) from exc
    finally:
        quiet.setLevel(level)
    async with connection:
        if work_queue:
            await _check_work_queue(connection, settings)


async def _check_work_queue(connection: aio_pika.abc.AbstractConnection, s: Settings) -> None:
    try:
        await declare_work_queue(await connection.channel(), s.queue_name, s.delivery_limit)
    except ChannelAccessRefused as exc:
        raise BrokerUnavailable(
            f"RabbitMQ refused user {s.rabbit_user!r} the queue {s.queue_name!r} or its "
            f"dead letters: on the broker run `rabbitmqctl set_permissions -p {s.rabbit_vhost} "
            f"{s.rabbit_user} '.*' '.*' '.*'`"
        ) from exc
    except aio_pika.exceptions.ChannelPreconditionFailed as exc:
        raise BrokerUnavailable(
            f"RabbitMQ has a queue {s.queue_name!r} (or its dead letters) made with other "
            f"arguments ({exc.args[0] if exc.args else exc}): set the same QUEUE_NAME and "
            "DELIVERY_LIMIT as the coordinator, or a new QUEUE_NAME"
        ) from exc
