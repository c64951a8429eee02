"""Commands over RabbitMQ request/reply (aio-pika's RPC pattern): the client publishes
`{"command", "args"}` to the request queue with a correlation id and its own reply queue; the
server runs it on the service and answers `{"ok": true, "result"}` or `{"ok": false, "error"}`.

A request expires in the queue when its caller stops waiting (and a service that receives it
later, by its `x-deadline-ms` header, drops it), so a service that comes back late does not apply
it; its message id is the idempotency key, so one redelivered after a
service died mid-command (or repeated by a client) is applied once."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from typing import Any, Protocol

import aio_pika
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from sd_academic.errors import AcademicError, TimedOut, Unavailable
from sd_academic.service import AcademicService
from sd_academic.topology import declare_request_queue

log = logging.getLogger("sd.academic.rpc")

SERVER_PREFETCH = 16
DRAIN_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0


# Unix time in milliseconds, an integer: AMQP tables carry floats as 32 bits (2-minute steps).
DEADLINE_HEADER = "x-deadline-ms"


def _deadline(message: AbstractIncomingMessage) -> float:
    """When the caller stops waiting (Unix time); no header or a bad one: never."""
    value = (message.headers or {}).get(DEADLINE_HEADER)
    if isinstance(value, bool) or not isinstance(value, int | str):
        return math.inf
    try:
        deadline_ms = int(value)
    except ValueError:
        return math.inf
    return deadline_ms / 1000


class AcademicClient(Protocol):
    """How the REST layer reaches the service, over RabbitMQ or in-process."""

    async def call(
        self, command: str, args: dict[str, Any], request_id: str | None = None
    ) -> Any: ...


class LocalClient:
    """The service in this process (embedded mode): the same commands, no broker."""

    def __init__(self, service: AcademicService) -> None:
        self.service = service

    async def call(self, command: str, args: dict[str, Any], request_id: str | None = None) -> Any:
        return await self.service.execute(command, args, request_id)


class RpcServer:
    """Consumes the request queue and answers each command on its `reply_to`."""

    def __init__(
        self, service: AcademicService, connection: AbstractRobustConnection, queue_name: str
    ) -> None:
        self.service = service
        self.connection = connection
        self.queue_name = queue_name
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        self._channel = await self.connection.channel()
        await self._channel.set_qos(prefetch_count=SERVER_PREFETCH)
        self._queue = await declare_request_queue(self._channel, self.queue_name)
        self._tag = await self._queue.consume(self._on_request)
        log.info("academic service answering commands on queue %r", self.queue_name)

    async def stop(self) -> None:
        """Stop taking commands, let those running finish (bounded), close (idempotent)."""
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError):
                pass
            self._tag = None
        try:
            await asyncio.wait_for(self._idle.wait(), DRAIN_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "stopping with %d command(s) unanswered: RabbitMQ redelivers them", self._in_flight
            )
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def _on_request(self, message: AbstractIncomingMessage) -> None:
        self._in_flight += 1
        self._idle.clear()
        try:
            # requeue=True: a command interrupted by our death is redelivered, and its message
            # id makes the retry answer as the first attempt did.
            async with message.process(requeue=True, ignore_processed=True):
                if not message.reply_to or not message.correlation_id:
                    log.warning("dropped a command without reply_to/correlation_id")
                    return
                late_s = time.time() - _deadline(message)
                if late_s > 0:
                    log.warning(
                        "dropped a command its caller stopped waiting for %.1f s ago "
                        "(if that keeps happening: are the machines' clocks in sync?)",
                        late_s,
                    )
                    return
                reply = await self._answer(message)
                assert self._channel is not None
                await self._channel.default_exchange.publish(
                    aio_pika.Message(
                        orjson.dumps(reply),
                        content_type="application/json",
                        correlation_id=message.correlation_id,
                    ),
                    routing_key=message.reply_to,
                    mandatory=False,
                )
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _answer(self, message: AbstractIncomingMessage) -> dict[str, Any]:
        try:
            request = orjson.loads(message.body)
            if not isinstance(request, dict):
                raise AcademicError("a command must be a JSON object", status=400)
            result = await self.service.execute(
                str(request.get("command", "")), request.get("args", {}), message.message_id
            )
            return {"ok": True, "result": result}
        except AcademicError as exc:
            return {"ok": False, "error": exc.to_wire()}
        except orjson.JSONDecodeError:
            return {"ok": False, "error": {"status": 400, "detail": "command is not JSON"}}
        except Exception:
            log.exception("command failed: %.200r", message.body)
            return {
                "ok": False,
                "error": {
                    "status": 500,
                    "detail": "the academic service failed on this command; see its log",
                },
            }


class RpcClient:
    """Sends commands to whichever academic service consumes the request queue."""

    def __init__(
        self, connection: AbstractRobustConnection, queue_name: str, timeout_s: float
    ) -> None:
        self.connection = connection
        self.queue_name = queue_name
        self.timeout_s = timeout_s
        self.reply_queue_name = f"{queue_name}.reply.{uuid.uuid4().hex[:16]}"
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._futures: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def start(self) -> None:
        self._channel = await self.connection.channel(publisher_confirms=True)
        await declare_request_queue(self._channel, self.queue_name)
        # A name of our own (not a server-named one): the robust channel declares it again,
        # under the same name, after a reconnection.
        queue = await self._channel.declare_queue(
            self.reply_queue_name, exclusive=True, auto_delete=True
        )
        await queue.consume(self._on_reply, no_ack=True)
        self._exchange = self._channel.default_exchange

    async def stop(self) -> None:
        for future in self._futures.values():
            if not future.done():
                future.set_exception(Unavailable("the coordinator is stopping"))
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._futures.get(message.correlation_id or "")
        if future is None or future.done():
            return  # the caller gave up (timed out) already
        try:
            reply = orjson.loads(message.body)
        except orjson.JSONDecodeError:
            future.set_exception(Unavailable("the academic service sent a reply that is not JSON"))
            return
        future.set_result(reply if isinstance(reply, dict) else {})

    async def call(self, command: str, args: dict[str, Any], request_id: str | None = None) -> Any:
        """Run `command` on the service and return its result; AcademicError if it refused,
        Unavailable (503) if no service can be reached, TimedOut (504) past the timeout."""
        if self._exchange is None:
            raise RuntimeError("RpcClient used before start()")
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._futures[correlation_id] = future
        message = aio_pika.Message(
            orjson.dumps({"command": command, "args": args}),
            content_type="application/json",
            correlation_id=correlation_id,
            reply_to=self.reply_queue_name,
            message_id=request_id or correlation_id,
            expiration=self.timeout_s,
            headers={DEADLINE_HEADER: int((time.time() + self.timeout_s) * 1000)},
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                try:
                    await self._exchange.publish(message, routing_key=self.queue_name)
                except (
                    aio_pika.exceptions.AMQPError,
                    aio_pika.exceptions.AMQPException,
                    ConnectionError,
                    RuntimeError,
                ) as exc:
                    raise Unavailable(
                        f"cannot send the command to the academic service through RabbitMQ "
                        f"({str(exc) or type(exc).__name__}); try again shortly"
                    ) from exc
                reply = await future
        except TimeoutError:
            raise await self._timed_out() from None
        finally:
            self._futures.pop(correlation_id, None)
        if reply.get("ok"):
            return reply.get("result")
        raise AcademicError.from_wire(reply.get("error") or {})

    async def _timed_out(self) -> AcademicError:
        try:
            consumers = await asyncio.wait_for(self._consumers(), PROBE_TIMEOUT_S)
        except TimeoutError:
            consumers = None
        if consumers is None:
            return Unavailable(
                "RabbitMQ does not answer, so the academic service cannot be reached; "
                "try again shortly"
            )
        if consumers == 0:
            return Unavailable(
                f"no academic service is running (nobody consumes queue {self.queue_name!r}): "
                "start `sd-academic`, or run it inside the coordinator (ACADEMIC_IN_PROCESS=true)"
            )
        return TimedOut(
            f"the academic service did not answer within {self.timeout_s:g} s. A write was "
            "applied entirely or not at all: read the record to see which, or send the request "
            "again with the same Idempotency-Key header"
        )

    async def _consumers(self) -> int | None:
        try:
            channel = await self.connection.channel()
            try:
                queue = await channel.declare_queue(self.queue_name, durable=True, robust=False)
                return int(queue.declaration_result.consumer_count or 0)
            finally:
                await channel.close()
        except Exception:
            return None
