"""A full disk pauses this worker's consuming: every task would fail alike, and each one handed
back counts towards the queue's delivery limit, so a worker that kept consuming would end a
whole job as failed within seconds. Paused, its tasks wait in the queue, or go to other
workers, until the disk has room again."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from sd_worker.consumers import Consumers

log = logging.getLogger("sd.worker")

CHECK_S = 2.0  # how often the free space is looked at while paused
ROOM_BYTES = 1 << 20  # consuming resumes once this much more is free than when writes failed
PLENTY_BYTES = 256 << 20  # ... or this much in all


def free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


class DiskPause:
    """`hit(exc)` when a task failed for want of space in one of `folders()` (this worker's
    DATA_DIR, the coordinator's if shared): consuming pauses until each has room."""

    def __init__(self, folders: Callable[[], list[Path]], consumers: Consumers) -> None:
        self.folders = folders
        self.consumers = consumers
        self._waiting: asyncio.Task[None] | None = None
        self._paused = asyncio.Event()

    async def hit(self, exc: BaseException) -> None:
        """Pause consuming, if not paused already; returns once it is, so that the task
        handed back is not delivered here again (each return counts towards its limit)."""
        if self._waiting is None or self._waiting.done():
            self._paused.clear()
            self._waiting = asyncio.create_task(self._pause(exc), name="sd-disk-full")
        await self._paused.wait()

    async def stop(self) -> None:
        if self._waiting is not None:
            self._waiting.cancel()
            await asyncio.gather(self._waiting, return_exceptions=True)

    async def _pause(self, exc: BaseException) -> None:
        folders = [f for f in self.folders() if f.exists()]
        at_failure = {f: free_bytes(f) for f in folders}
        await self.consumers.set_paused(True, "disk")
        self._paused.set()
        log.error(
            "the disk is full (%s): consuming paused; the tasks in hand go back to the queue, "
            "for other workers, and this one takes more once %s has room",
            exc,
            " and ".join(str(f) for f in folders) or "its DATA_DIR",
        )
        loop = asyncio.get_running_loop()
        since = loop.time()
        while True:
            await asyncio.sleep(CHECK_S)
            if all(
                free_bytes(f) >= min(free + ROOM_BYTES, PLENTY_BYTES)
                for f, free in at_failure.items()
            ):
                break
        log.warning("the disk has room again after %.0f s: consuming resumes", loop.time() - since)
        await self.consumers.set_paused(False, "disk")
