"""Backup runs: the tasks a lost or lagging worker holds are published again; first result wins.

RabbitMQ gives a silent connection's unacked deliveries back only after its heartbeat timeout,
and a slow worker keeps its prefetched tasks until it gets to them. Workers report the task ids
they hold; when one goes silent (offline after a few report intervals), or is far behind while
the queue is empty and another worker idles, those tasks are published once more. Outcomes are
stored once by task id (the first wins, later ones are answered as duplicates), and the worker
that still holds a copy learns from its next report's answer that it can ack it unrun.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence

from sd_common import topology
from sd_coordinator.blobs import Blobs
from sd_coordinator.broker import Broker
from sd_coordinator.registry import Registry, WorkerState
from sd_coordinator.store import FINISHED, Store
from sd_coordinator.submit import message_again
from sd_coordinator.transport import Unroutable

log = logging.getLogger("sd.coordinator.rescue")

LOST = "host lost"
STRAGGLER = "straggler"
# While the queue is empty and a worker idles, a held task is a hostage once held this long
# and beyond what its holder finishes in as long at its own rate.
STRAGGLER_AFTER_S = 3.0
# Backups published per sweep for each core of the idle workers (a few more than the pool
# runs at once, to cover the link's round trip); the next sweep adds more as they finish.
BACKUPS_PER_IDLE_CPU = 3
# Unfinished tasks that no live worker holds while the queue is empty were delivered to a worker
# that went silent before it reported them: published again once orphaned this many report
# intervals (a live worker reports a new delivery within one).
ORPHAN_AFTER_INTERVALS = 3
ORPHANS_MAX = 50_000  # unfinished tasks looked at per sweep (the queue is empty: few are)
RESCUED_MAX = 200_000
# A backup can land on a stalled worker too (the broker still sees free prefetch slots on its
# open connection): an orphaned backup is published again, up to this many times in all.
RERUNS_MAX = 3  # task ids remembered as published again (oldest forgotten first)


class Rescuer:
    """Publishes backup copies of held tasks; `start()` runs its sweep every interval."""

    def __init__(
        self,
        registry: Registry,
        store: Store,
        blobs: Blobs,
        broker: Broker,
        report_interval_s: float = 1.0,
        queue_name: str = "tareas",
    ) -> None:
        self.registry = registry
        self.store = store
        self.blobs = blobs
        self.broker = broker
        self.interval_s = report_interval_s / 2
        self.orphan_after_s = ORPHAN_AFTER_INTERVALS * report_interval_s
        self._orphans: dict[str, float] = {}  # task id → since when no live worker holds it
        self.rescued: OrderedDict[str, int] = OrderedDict()  # task id → times published again
        # Task id → the worker whose backup queue its last backup went to.
        self._sent_to: OrderedDict[str, str] = OrderedDict()
        self.backup_prefix = topology.backup_queue_prefix(queue_name)
        self._retry: list[tuple[list[str], str]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Sweep in the background until `stop()`."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="sd-rescuer")

    async def stop(self) -> None:
        """Stop sweeping (idempotent)."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sweep()
            except Exception as exc:  # the broker or the database is away: next sweep
                log.warning("could not publish backup tasks yet (%s); retrying", exc)

    async def sweep(self) -> int:
        """Publish again what lost workers held and what stragglers sit on; how many."""
        retry, self._retry = self._retry, []
        count = 0
        for ids, reason in retry:
            count += await self.rerun(ids, reason)
        for name, ids in self.registry.take_lost().items():
            count += await self.rerun(ids, f"{LOST}: {name}")
        for name, ids, target in await self._hostages():
            count += await self.rerun(ids, f"{STRAGGLER}: {name}", target)
        for name, ids in (await self._orphaned()).items():
            count += await self.rerun(ids, f"{LOST}: {name}" if name else LOST)
        return count

    async def _orphaned(self) -> dict[str, list[str]]:
        """Unfinished tasks, by the worker that last ran them, that no live worker has held
        for `orphan_after_s` while the queue stayed empty."""
        if await self.broker.pending() > 0:
            self._orphans.clear()
            return {}
        held: set[str] = set()
        for worker in self.registry.live():
            held.update(worker.held_since)
        now = time.monotonic()
        orphans: dict[str, float] = {}
        due: dict[str, list[str]] = {}  # by worker name, "" when none ever started it
        for task_id, worker_name in await self.store.unfinished_published(ORPHANS_MAX):
            if task_id in held or self.rescued.get(task_id, 0) >= RERUNS_MAX:
                continue
            orphans[task_id] = since = self._orphans.get(task_id, now)
            if now - since >= self.orphan_after_s:
                due.setdefault(worker_name or "", []).append(task_id)
        self._orphans = orphans
        return due

    async def _hostages(self) -> list[tuple[str, list[str], WorkerState]]:
        """Per worker, held tasks it will not get to soon while the queue is empty and another
        worker idles: the last ones it holds, beyond what its own rate finishes within
        STRAGGLER_AFTER_S and held at least that long; as many as the idle workers can start,
        each batch with the idle worker it goes to."""
        live = self.registry.live()
        idle = [w for w in live if w.holding == 0 and w.status in ("free", "busy")]
        if not idle:
            return []
        now = time.time()
        names = {w.name for w in live}
        # Filled in turn, each idle worker up to what it can start.
        rooms = [(w, w.cpus * BACKUPS_PER_IDLE_CPU) for w in idle]
        out: list[tuple[str, list[str], WorkerState]] = []
        for worker in sorted((w for w in live if w.holding), key=lambda w: w.rate):
            late = self._late(worker, now, names)
            while late and rooms:
                target, room = rooms.pop(0)
                batch, late = late[:room], late[room:]
                out.append((worker.name, batch, target))
                if len(batch) < room:
                    rooms.insert(0, (target, room - len(batch)))
            if not rooms:
                break
        if not out or await self.broker.pending() > 0:
            return []
        return out

    def _late(self, worker: WorkerState, now: float, live: set[str]) -> list[str]:
        """The worker's held tasks from the last one back, down to what it finishes soon; not
        the ones already sent to a live worker as backups."""
        will_do = int(worker.rate * STRAGGLER_AFTER_S)
        held = list(worker.held_since.items())[will_do:]
        return [
            t
            for t, since in reversed(held)
            if now - since >= STRAGGLER_AFTER_S
            and (t not in self.rescued or self._lost_with(t, live))
        ]

    def _lost_with(self, task_id: str, live: set[str]) -> bool:
        """Its backup went to a worker's own queue, and that worker (and queue) is gone."""
        to = self._sent_to.get(task_id)
        return to is not None and to not in live and self.rescued[task_id] < RERUNS_MAX

    async def rerun(
        self, task_ids: Sequence[str], reason: str, to: WorkerState | None = None
    ) -> int:
        """Publish the unfinished ones among `task_ids` once more (each at most RERUNS_MAX
        times): to worker `to`'s own backup queue if it has one, else to the work queue."""
        fresh = [t for t in task_ids if self.rescued.get(t, 0) < RERUNS_MAX]
        if not fresh:
            return 0
        queue = to.backup_queue if to is not None else None
        if queue is not None and not queue.startswith(self.backup_prefix):
            queue = None  # a worker names only its own backup queue, never another one
        try:
            rows = await self.store.tasks_to_rerun(fresh)
            messages = [message_again(row, self.blobs) for row in rows]
            if messages:
                try:
                    await self.broker.publish(messages, queue)
                except Unroutable:  # the worker left meanwhile: any worker will do
                    queue = None
                    await self.broker.publish(messages)
                await self.store.note_reruns([(m.task_id, m.job_id) for m in messages], reason)
        except Exception:
            self._retry.append((fresh, reason))
            raise
        for message in messages:
            self.rescued[message.task_id] = self.rescued.get(message.task_id, 0) + 1
            if queue is not None and to is not None:
                # Lost with that worker's queue if it leaves: then the task may be sent again.
                self._sent_to[message.task_id] = to.name
                self._sent_to.move_to_end(message.task_id)
        while len(self.rescued) > RESCUED_MAX:
            self.rescued.popitem(last=False)
        while len(self._sent_to) > RESCUED_MAX:
            self._sent_to.popitem(last=False)
        if messages:
            log.warning(
                "%d task(s) published again (%s); the first result of each is kept",
                len(messages),
                reason,
            )
        return len(messages)

    async def settled(self, held: Sequence[str]) -> list[str]:
        """Which of a worker's held tasks were published again and are already finished: it
        can ack them without running them."""
        again = [t for t in held if t in self.rescued]
        if not again:
            return []
        states = await self.store.task_states(again)
        return [t for t in again if states.get(t) in FINISHED]
