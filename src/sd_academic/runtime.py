"""The academic parts a process runs, built from settings: `AcademicServer` (the service on
RabbitMQ: `sd-academic`, or inside the coordinator) and `AcademicRuntime` (the coordinator's
side: a client for the REST layer, the events for the dashboard, and by default the server)."""

from __future__ import annotations

import logging
import socket
import uuid

from aio_pika.abc import AbstractRobustConnection

from sd_academic.events import AmqpEventPublisher, EventHub, EventRelay
from sd_academic.rpc import AcademicClient, LocalClient, RpcClient, RpcServer
from sd_academic.service import AcademicService
from sd_academic.store import AcademicStore
from sd_academic.topology import db_path, events_exchange_name, request_queue_name
from sd_common.settings import Settings
from sd_common.topology import broker_display, connect

log = logging.getLogger("sd.academic")


class AcademicServer:
    """The service reachable over RabbitMQ: its data, the request queue, the topic exchange."""

    def __init__(self, settings: Settings, connection_name: str = "sd-academic") -> None:
        self.settings = settings
        self.connection_name = connection_name
        self.connection: AbstractRobustConnection | None = None
        self.service: AcademicService | None = None
        self.rpc: RpcServer | None = None

    async def start(self) -> None:
        s = self.settings
        self.connection = await connect(s, f"{self.connection_name}@{socket.gethostname()}")
        exchange = events_exchange_name(s)
        publisher = AmqpEventPublisher(self.connection, exchange)
        await publisher.start()
        self.service = AcademicService(AcademicStore(db_path(s)), publisher)
        await self.service.start()
        self.rpc = RpcServer(self.service, self.connection, request_queue_name(s))
        await self.rpc.start()

    async def stop(self) -> None:
        """Finish running commands, then close (idempotent)."""
        if self.rpc is not None:
            await self.rpc.stop()
            self.rpc = None
        if self.service is not None:
            await self.service.stop()
            self.service = None
        if self.connection is not None:
            await self.connection.close()
            self.connection = None


class AcademicRuntime:
    """What the coordinator runs (see the module docstring). Embedded mode: the service in
    this process behind the same client interface, its events straight to the hub."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hub = EventHub()
        self._local: AcademicService | None = None
        self._server: AcademicServer | None = None
        self._connection: AbstractRobustConnection | None = None
        self._rpc: RpcClient | None = None
        self._client: AcademicClient | None = None

    @property
    def client(self) -> AcademicClient:
        """How the REST layer sends commands."""
        if self._client is None:
            raise RuntimeError("AcademicRuntime used before start()")
        return self._client

    async def start(self) -> None:
        s = self.settings
        if s.embedded:
            self._local = AcademicService(AcademicStore(db_path(s)), self.hub)
            await self._local.start()
            self._client = LocalClient(self._local)
            return
        if s.academic_in_process:
            self._server = AcademicServer(s, "sd-coordinator-academic")
            await self._server.start()
        self._connection = await connect(
            s, f"sd-coordinator-academic-client@{socket.gethostname()}"
        )
        queue, exchange = request_queue_name(s), events_exchange_name(s)
        self._rpc = RpcClient(self._connection, queue, s.academic_timeout_s)
        await self._rpc.start()
        relay_queue = f"{exchange}.dashboard.{uuid.uuid4().hex[:12]}"
        relay = EventRelay(self._connection, exchange, relay_queue, self.hub)
        await relay.start()
        self._client = self._rpc
        where = "in this process" if self._server else "in sd-academic, elsewhere"
        log.info(
            "academic commands go over RabbitMQ (%s, queue %r) to the service %s",
            broker_display(s),
            queue,
            where,
        )

    async def stop(self) -> None:
        """Stop in reverse order (idempotent)."""
        self._client = None
        if self._rpc is not None:
            await self._rpc.stop()
            self._rpc = None
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self._local is not None:
            await self._local.stop()
            self._local = None
