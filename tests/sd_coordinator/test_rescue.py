"""Backup runs decided by the coordinator: what a lost worker held, what nobody holds, what a
straggler sits on; each published once, on the embedded queue, from real SQLite rows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sd_common import topology
from sd_common.messages import WorkerHello
from sd_common.settings import Settings
from sd_coordinator.blobs import Blobs
from sd_coordinator.broker import EmbeddedBroker
from sd_coordinator.registry import Registry
from sd_coordinator.rescue import Rescuer
from sd_coordinator.store import Finish, NewTask, Store

INTERVAL_S = 0.05


class Parts:
    def __init__(self, root: Path) -> None:
        self.store = Store(root / "sd.sqlite3")
        self.blobs = Blobs(root)
        self.broker = EmbeddedBroker(Settings(data_dir=root, _env_file=None), self._dead)
        self.registry = Registry(report_interval_s=INTERVAL_S)
        self.rescuer = Rescuer(self.registry, self.store, self.blobs, self.broker, INTERVAL_S)

    async def _dead(self, task_id: str, reason: str) -> None:
        raise AssertionError(f"nothing is dead-lettered here ({task_id}: {reason})")

    async def job(self, count: int) -> list[str]:
        """A published job of `count` sleep tasks, taken off the queue (delivered somewhere)."""
        ids = [f"{n:032x}" for n in range(1, count + 1)]
        tasks = [NewTask(t, "sleep", params={"seconds": 0}) for t in ids]
        await self.store.create_job("a" * 32, "task", "sleep", "", tasks)
        await self.store.mark_published(ids)
        return ids

    def report(self, name: str, held: list[str], processed: int = 0) -> None:
        hello = WorkerHello(
            name=name,
            session=name,
            held=held,
            processed=processed,
            cpus=2,
            backup_queue=topology.backup_queue_name("tareas", name, name),
        )
        try:
            self.registry.report(hello, is_local=False)
        except Exception:
            self.registry.register(hello, is_local=False)

    async def published(self) -> list[str]:
        ids = []
        while await self.broker.pending():
            message, _ = await self.broker.get()
            ids.append(message.task_id)
        return ids


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    p = Parts(tmp_path)
    await p.blobs.start()
    await p.store.start()
    await p.broker.start()
    try:
        yield p
    finally:
        await p.broker.stop()
        await p.store.stop()
        await p.blobs.stop()


async def test_a_lost_workers_unfinished_tasks_are_published_again_once(parts: Parts) -> None:
    ids = await parts.job(4)
    parts.report("alfa", held=ids[:3])
    parts.report("beta", held=ids[3:])
    await parts.store.finish(Finish(ids[0], "alfa", failed=False))
    assert await parts.rescuer.sweep() == 0  # alfa still reports

    await asyncio.sleep(4 * INTERVAL_S)
    parts.report("beta", held=ids[3:])
    assert await parts.rescuer.sweep() == 2
    assert await parts.published() == ids[1:3]  # not the finished one, not beta's
    job = await parts.store.get_job("a" * 32)
    assert job is not None
    assert [t.rerun for t in job.tasks] == [None, "host lost: alfa", "host lost: alfa", None]

    parts.report("beta", held=ids[3:])
    assert await parts.rescuer.sweep() == 0  # once per loss
    assert await parts.published() == []


async def test_tasks_no_live_worker_holds_while_the_queue_is_empty_are_orphans(
    parts: Parts,
) -> None:
    ids = await parts.job(3)
    for _ in range(5):  # beta holds ids[2]; ids[:2] went to a worker that never reported them
        parts.report("beta", held=ids[2:])
        await parts.rescuer.sweep()
        await asyncio.sleep(INTERVAL_S)
    assert sorted(await parts.published()) == ids[:2]


async def test_a_held_task_finished_elsewhere_is_settled_for_its_holder(parts: Parts) -> None:
    ids = await parts.job(2)
    await parts.rescuer.rerun(ids, "host lost: alfa")
    assert await parts.rescuer.settled(ids) == []
    await parts.store.finish(Finish(ids[1], "beta", failed=False))
    assert await parts.rescuer.settled(ids) == [ids[1]]


async def test_a_straggler_gives_its_last_held_tasks_to_an_idle_worker(parts: Parts) -> None:
    ids = await parts.job(10)
    parts.report("slow", held=ids)
    parts.report("idle", held=[])
    assert await parts.rescuer.sweep() == 0  # held for less than the threshold
    since = time.time() - 10
    for worker in parts.registry.live():
        worker.held_since = dict.fromkeys(worker.held_since, since)
    await parts.rescuer.sweep()
    backups = await parts.published()
    # The last ones first, as many as the idle worker's two cores start (3 each).
    assert sorted(backups) == ids[-6:]


def age_held(parts: Parts, seconds: float = 10) -> None:
    since = time.time() - seconds
    for worker in parts.registry.live():
        worker.held_since = dict.fromkeys(worker.held_since, since)


async def test_a_backup_lost_with_the_worker_it_was_sent_to_is_sent_again(parts: Parts) -> None:
    ids = await parts.job(2)
    parts.report("slow", held=ids)
    parts.report("idle", held=[])
    age_held(parts)
    assert await parts.rescuer.sweep() == 2  # to idle's own queue
    assert sorted(await parts.published()) == sorted(ids)
    parts.report("slow", held=ids)
    assert await parts.rescuer.sweep() == 0  # idle is on them

    # idle goes silent, its queue with it: another idle worker gets them.
    await asyncio.sleep(4 * INTERVAL_S)
    parts.report("slow", held=ids)
    parts.report("spare", held=[])
    age_held(parts)
    assert await parts.rescuer.sweep() == 2
    assert sorted(await parts.published()) == sorted(ids)
