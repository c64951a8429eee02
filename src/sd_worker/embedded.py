"""The worker as the coordinator's embedded local worker uses it: a task processor with its own
process pool and input cache, reaching the coordinator in process through a `Link`."""

from __future__ import annotations

from collections.abc import Callable

from sd_common.settings import Settings
from sd_worker.cache import InputCache
from sd_worker.executor import Executor
from sd_worker.link import Link, LinkRefused
from sd_worker.params import get_optimal_params
from sd_worker.processing import RetryLater, TaskProcessor
from sd_worker.resources import ResourceSampler, os_name
from sd_worker.shared import SharedStorage

__all__ = ["Link", "LinkRefused", "LocalProcessor", "RetryLater"]


class LocalProcessor(TaskProcessor):
    """The task processor with its own process pool: `start(storage_offer)`, then `handle()`
    each task (RetryLater: it goes back to the queue), then `stop()`."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        link: Link,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        executor = Executor.for_settings(settings)
        cache = InputCache(settings.data_dir / "worker-cache" / "local")
        super().__init__(name, settings, link, cache, executor, on_change)
        self.os = os_name()
        self._sampler = ResourceSampler()

    @property
    def cores(self) -> int:
        """The pool's processes."""
        return self.executor.workers

    def idle_slots(self) -> int:
        """The deliveries a worker of this many cores holds while the queue is empty."""
        consumers, prefetch = get_optimal_params(0, 1, self.executor.workers)
        return consumers * prefetch

    def start(self, storage_offer: object) -> None:
        """Start the pool; with SHARED_STORAGE=auto, use the coordinator's DATA_DIR in place."""
        self.executor.start()
        if self.settings.shared_storage == "auto":
            self.shared = SharedStorage.probe(storage_offer)

    def stop(self) -> None:
        """Shut the pool down (idempotent)."""
        self.executor.stop()

    def sample(self) -> tuple[float, float, float]:
        """This node's (cpu %, ram %, net MB/s), as a report carries them."""
        return self._sampler.sample()
