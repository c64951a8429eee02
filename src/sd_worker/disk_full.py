"""A full disk pauses this worker's consuming: every task would fail alike, and each one handed
back counts towards the queue's delivery limit, so a worker that kept consuming would end a
whole job as failed within seconds. Paused, its tasks wait in the queue, or go to other
workers, until the disk has room again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from sd_worker.consumers import Consumers

log = logging.getLogger("sd.worker")

CHECK_S = 2.0  # how often a paused worker tries the disk again
PROBE_BYTES = 1 << 20  # consuming resumes once a file this large can be written in each folder


def has_room(folder: Path) -> bool:
    """True if a file of PROBE_BYTES can be written in `folder` (free blocks, a free inode and
    room under any quota alike); the file is removed at once."""
    probe = folder / f".sd-disk-probe-{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(bytes(PROBE_BYTES))
            f.flush()
            os.fsync(f.fileno())  # on file systems that only refuse at writeback
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


async def until_room(folders: list[Path]) -> None:
    """Return once each of `folders` has room (`has_room`), trying every CHECK_S."""
    while True:
        await asyncio.sleep(CHECK_S)
        if await asyncio.to_thread(lambda: all(has_room(f) for f in folders)):
            return


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
        try:
            await self.consumers.set_paused(True, "disk")
        except Exception as error:  # its channel closed: the next such failure tries again
            log.warning("could not pause consuming for a full disk: %s", error)
            return
        finally:
            self._paused.set()  # the tasks in hand go back to the queue whatever happened
        log.error(
            "the disk is full (%s): consuming paused; the tasks in hand go back to the queue, "
            "for other workers, and this one takes more once %s has room",
            exc,
            " and ".join(str(f) for f in folders) or "its DATA_DIR",
        )
        loop = asyncio.get_running_loop()
        since = loop.time()
        await until_room(folders)
        log.warning("the disk has room again after %.0f s: consuming resumes", loop.time() - since)
        await self.consumers.set_paused(False, "disk")
