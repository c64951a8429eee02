"""The worker's process pool: results and errors come back, a dying process fails only the task
that killed it, and the pool goes on."""

from __future__ import annotations

import asyncio

import pytest

from sd_worker.executor import Executor, PoolCrashed, PoolUnavailable
from support import pool_tasks


async def pids_of(executor: Executor, expected: int) -> set[int]:
    """The pool's process ids, asked with calls slow enough to reach every process (a fresh
    portable pool's processes start one after another)."""
    pids: set[int] = set()
    for _ in range(20):
        calls = (executor.run(pool_tasks.slow_pid, 0.1) for _ in range(2 * expected))
        pids |= set(await asyncio.gather(*calls))
        if len(pids) >= expected:
            break
    return pids


@pytest.fixture(params=[False, True], ids=["linux-fast-path", "portable"])
def portable(request: pytest.FixtureRequest) -> bool:
    """Every test runs on both pools: the event-loop one Linux uses and the portable one that
    Windows and macOS use (concurrent.futures, spawn)."""
    return bool(request.param)


@pytest.fixture
async def executor(portable: bool):
    pool = Executor(2, portable=portable)
    pool.start()
    await pool.ready()
    yield pool
    pool.stop()


async def test_many_calls_return_their_own_results(executor: Executor) -> None:
    results = await asyncio.gather(*(executor.run(pool_tasks.square, i) for i in range(500)))
    assert results == [i * i for i in range(500)]


async def test_an_exception_in_the_task_comes_back_as_itself(executor: Executor) -> None:
    with pytest.raises(ValueError, match="bad pixels"):
        await executor.run(pool_tasks.fail, "bad pixels")
    assert await executor.run(pool_tasks.square, 3) == 9


async def test_a_task_that_kills_its_process_fails_alone_and_the_pool_goes_on(
    executor: Executor,
) -> None:
    neighbours = [executor.run(pool_tasks.slow_square, i, 0.2) for i in range(6)]
    poison = executor.run(pool_tasks.die)
    results = await asyncio.gather(*neighbours, poison, return_exceptions=True)

    assert results[:6] == [i * i for i in range(6)]
    assert isinstance(results[6], PoolCrashed)
    assert len(await pids_of(executor, 2)) == 2


async def test_a_task_shot_from_outside_is_run_again_and_succeeds(executor: Executor) -> None:
    assert await executor.run(pool_tasks.shot_after, 0.1) == 42


async def test_stop_ends_every_process(executor: Executor) -> None:
    import psutil

    pids = set(await asyncio.gather(*(executor.run(pool_tasks.pid) for _ in range(10))))
    processes = [psutil.Process(p) for p in pids]
    executor.stop()
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert not alive


async def test_large_calls_and_answers_cross_at_once_without_deadlock(executor: Executor) -> None:
    # Megabytes each way: the loop writes calls while processes write answers on the same pipes.
    blobs = [bytes([i]) * (3 << 20) for i in range(12)]
    answers = await asyncio.wait_for(
        asyncio.gather(*(executor.run(pool_tasks.echo, b) for b in blobs)), 60
    )
    assert answers == blobs


async def test_answers_of_every_size_come_back_whole_whether_split_or_joined_in_reads(
    executor: Executor,
) -> None:
    # Frames larger than one read of the pipe (1 MB) beside tiny ones, several in one read.
    sizes = [(1 << 20) + 3, 17, 0, (5 << 20) // 2, 255, 1 << 20, 4096, 1]
    calls = [(size, seed) for seed in range(3) for size in sizes]
    answers = await asyncio.wait_for(
        asyncio.gather(*(executor.run(pool_tasks.filled, size, seed) for size, seed in calls)), 60
    )
    assert answers == [pool_tasks.filled(size, seed) for size, seed in calls]


async def test_an_answer_that_cannot_be_unpickled_fails_its_task_not_the_worker(
    executor: Executor,
) -> None:
    with pytest.raises(RuntimeError, match="could not be read"):
        await asyncio.wait_for(executor.run(pool_tasks.fail_picky), 10)
    assert await executor.run(pool_tasks.square, 4) == 16


async def test_pool_processes_keep_the_configured_pillow_blocks_even_after_a_crash(
    portable: bool,
) -> None:
    pool = Executor(2, pillow_blocks_max=3, portable=portable)
    pool.start()
    try:
        assert set(
            await asyncio.gather(*(pool.run(pool_tasks.pillow_blocks_max) for _ in range(10)))
        ) == {3}
        with pytest.raises(PoolCrashed):
            await pool.run(pool_tasks.die)
        assert len(await pids_of(pool, 2)) == 2
        # The fresh process that replaced the dead one was set up the same way.
        assert set(
            await asyncio.gather(*(pool.run(pool_tasks.pillow_blocks_max) for _ in range(10)))
        ) == {3}
    finally:
        pool.stop()


async def test_without_a_setting_pool_processes_keep_pillows_own_default(
    executor: Executor,
) -> None:
    from PIL import Image

    assert await executor.run(pool_tasks.pillow_blocks_max) == Image.core.get_blocks_max()


async def test_a_system_without_working_semaphores_is_named_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import multiprocessing.synchronize

    def no_sem_open(*args: object, **kwargs: object) -> None:
        # What multiprocessing raises where sem_open is missing (some BSDs, a read-only /dev/shm).
        raise ImportError("This platform lacks a functioning sem_open implementation")

    monkeypatch.setattr(multiprocessing.synchronize, "Lock", no_sem_open)
    pool = Executor(1, portable=True)
    with pytest.raises(PoolUnavailable, match=r"cannot run a process pool .*sem_open.*/dev/shm"):
        pool.start()
