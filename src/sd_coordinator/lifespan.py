"""The coordinator's parts, started in order and stopped in reverse."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import FastAPI

from sd_academic.runtime import AcademicRuntime
from sd_common.settings import Settings
from sd_common.tasks import load_task_modules
from sd_common.topology import broker_display
from sd_coordinator.blobs import Blobs
from sd_coordinator.broker import AmqpBroker, Broker, EmbeddedBroker
from sd_coordinator.growing import CancelledJobs, GrowingJobs
from sd_coordinator.ingest import Ingestor
from sd_coordinator.local_worker import LocalLink, LocalWorker
from sd_coordinator.metrics import Metrics
from sd_coordinator.rates import RateWindow
from sd_coordinator.registry import Registry
from sd_coordinator.rescue import Rescuer
from sd_coordinator.store import STORE_FILE, Store
from sd_coordinator.submit import Submitter

log = logging.getLogger("sd.coordinator")

T = TypeVar("T")


@dataclass
class Services:
    """Everything a request handler may need, built once per app."""

    settings: Settings
    store: Store
    blobs: Blobs
    registry: Registry
    rates: RateWindow
    ingestor: Ingestor
    broker: Broker
    submitter: Submitter
    local_worker: LocalWorker | None = None
    started_at: float = field(default_factory=time.time)
    # Set once the server begins to stop: answers that last (event streams, results long
    # polls) end at once instead of holding the shutdown (`request_stop`).
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    extras: dict[str, Any] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    academic: AcademicRuntime | None = None
    growing: GrowingJobs | None = None
    rescuer: Rescuer | None = None  # distributed mode: backup runs of lost workers' tasks

    def request_stop(self) -> None:
        """The server is stopping: end the answers that last. Called by the server before it
        waits for open requests (`__main__`), and again by the app's shutdown."""
        self.stopping.set()
        self.store.wake_waiters()

    async def unless_stopping(self, aw: Awaitable[T], timeout_s: float) -> T | None:
        """What `aw` gives within `timeout_s`; None if the time passes or the server begins to
        stop first (then `aw` is cancelled)."""
        task = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait((task, stop), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
        return task.result() if task.done() and not task.cancelled() else None

    @property
    def jobs(self) -> GrowingJobs:
        """Growing jobs and cancelling (built by `build_services`)."""
        if self.growing is None:
            raise RuntimeError("Services built without growing jobs")
        return self.growing


def build_services(settings: Settings) -> Services:
    """Wire the parts together (nothing started yet)."""
    store = Store(settings.data_dir / STORE_FILE)
    blobs = Blobs(settings.data_dir)
    rates = RateWindow(window_s=5.0)
    registry = Registry(settings.report_interval_s)
    metrics = Metrics()
    ingestor = Ingestor(store, blobs, rates, metrics)
    cancelled = CancelledJobs()
    broker: Broker
    local_worker = None
    if settings.embedded:
        embedded = EmbeddedBroker(settings, ingestor.dead_letter)
        local_worker = LocalWorker(settings, embedded, registry, store, LocalLink(blobs, ingestor))
        local_worker.processor.cancelled_jobs = cancelled
        broker = embedded
    else:
        broker = AmqpBroker(settings, ingestor.dead_letter)
    submitter = Submitter(settings, store, blobs, broker, metrics)
    rescuer = None
    if not settings.embedded:
        rescuer = Rescuer(
            registry, store, blobs, broker, settings.report_interval_s, settings.queue_name
        )
    return Services(
        settings,
        store,
        blobs,
        registry,
        rates,
        ingestor,
        broker,
        submitter,
        local_worker,
        metrics=metrics,
        academic=AcademicRuntime(settings),
        growing=GrowingJobs(settings, store, blobs, broker, cancelled, metrics),
        rescuer=rescuer,
    )


async def start_services(services: Services) -> None:
    """Start every part in dependency order and recover what a crash left unpublished."""
    s = services.settings
    load_task_modules(s.task_modules)
    await services.blobs.start()
    await services.store.start()
    await services.broker.start()
    await services.jobs.start()
    if services.academic is not None:
        await services.academic.start()
    recovered = await services.submitter.republish_unfinished(unpublished_only=not s.embedded)
    if recovered:
        log.info("re-enqueued %d unfinished task(s) from %s", recovered, s.data_dir)
    if services.local_worker is not None:
        await services.local_worker.start()
        log.info(
            "embedded mode: RABBIT_HOST is not set, so tasks go through an in-process queue to "
            "a local worker. Set RABBIT_HOST to spread work over several machines."
        )
    else:
        log.info("distributed mode: queue %r on %s", s.queue_name, broker_display(s))
    if services.rescuer is not None:
        await services.rescuer.start()


async def stop_services(services: Services) -> None:
    """Stop in reverse order (each stop is idempotent)."""
    services.request_stop()
    if services.rescuer is not None:
        await services.rescuer.stop()
    if services.local_worker is not None:
        await services.local_worker.stop()
    if services.academic is not None:
        await services.academic.stop()
    await services.broker.stop()
    await services.store.stop()
    await services.blobs.stop()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """FastAPI lifespan: start the services, serve, stop them."""
    services: Services = app.state.services
    await start_services(services)
    try:
        yield
    finally:
        await stop_services(services)
