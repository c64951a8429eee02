"""The SQLite store on a real file: jobs, exactly-once outcomes, restart survival."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import pytest

from sd_coordinator.store import Finish, Ingest, NewTask, Store, job_state


def ids(n: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(n)]


async def job_state_of(store: Store, job_id: str) -> str:
    job = await store.job_summary(job_id)
    assert job is not None
    return job.state


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = Store(tmp_path / "sd.sqlite3")
    await s.start()
    yield s
    await s.stop()


async def test_job_moves_from_queued_to_done(store: Store) -> None:
    job_id, (a, b) = uuid.uuid4().hex, ids(2)
    await store.create_job(
        job_id,
        "image",
        "x.jpg",
        "grayscale",
        [NewTask(a, "image", "0" * 64), NewTask(b, "image", "0" * 64)],
    )
    assert await job_state_of(store, job_id) == "queued"
    await store.mark_running([a], "w1")
    assert await job_state_of(store, job_id) == "running"
    assert await store.finish(Finish(a, "w1", failed=False, result=f"{a}.png")) is Ingest.STORED
    assert await store.finish(Finish(b, "w2", failed=False, result=f"{b}.png")) is Ingest.STORED
    job = await store.get_job(job_id)
    assert job is not None
    assert (job.summary.state, job.summary.done, job.summary.failed) == ("done", 2, 0)
    assert [t.worker for t in job.tasks] == ["w1", "w2"]


async def test_tasks_a_worker_started_together_are_marked_running_at_once(store: Store) -> None:
    job_id, (a, b, c) = uuid.uuid4().hex, ids(3)
    await store.create_job(job_id, "task", "sleep", "", [NewTask(t, "sleep") for t in (a, b, c)])
    assert await store.finish(Finish(c, "w0", failed=False, output=0)) is Ingest.STORED
    await store.mark_running([a, b, c, uuid.uuid4().hex], "w1")
    job = await store.get_job(job_id)
    assert job is not None and job.summary.state == "running"
    assert [(t.state, t.worker) for t in job.tasks] == [
        ("running", "w1"),
        ("running", "w1"),
        ("done", "w0"),
    ]  # a finished task stays finished


async def test_batches_longer_than_one_sql_chunk_are_stored_whole(store: Store) -> None:
    job_id, tasks = uuid.uuid4().hex, ids(1_200)  # more than IN_CHUNK ids in one statement
    await store.create_job(job_id, "task", "sleep", "", [NewTask(t, "sleep") for t in tasks])
    await store.mark_running(tasks, "w")
    assert (await store.task_states(tasks)) == dict.fromkeys(tasks, "running")
    answers = await store.finish_many([Finish(t, "w", failed=False, output=0) for t in tasks])
    assert answers == [Ingest.STORED] * len(tasks)
    job = await store.get_job(job_id)
    assert job is not None and (job.summary.state, job.summary.done) == ("done", 1_200)


async def test_a_repeated_outcome_is_a_duplicate_and_counts_once(store: Store) -> None:
    job_id, (a,) = uuid.uuid4().hex, ids(1)
    await store.create_job(job_id, "task", "sleep", "", [NewTask(a, "sleep")])
    outcomes = await asyncio.gather(
        *(store.finish(Finish(a, "w", failed=False, output={"n": i})) for i in range(5))
    )
    assert outcomes.count(Ingest.STORED) == 1
    assert outcomes.count(Ingest.DUPLICATE) == 4
    job = await store.get_job(job_id)
    assert job is not None and job.summary.done == 1


async def test_a_batch_of_outcomes_counts_each_task_once_across_jobs(store: Store) -> None:
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    a, b, c, d = ids(4)
    await store.create_job(first, "task", "sleep", "", [NewTask(a, "sleep"), NewTask(b, "sleep")])
    await store.create_job(second, "task", "sleep", "", [NewTask(c, "sleep"), NewTask(d, "sleep")])
    assert await store.finish(Finish(d, "w", failed=False, output=0)) is Ingest.STORED
    answers = await store.finish_many(
        [
            Finish(a, "w", failed=False, output=1),
            Finish(c, "w", failed=True, error="boom"),
            Finish(a, "w", failed=True, error="a repeat in the same batch"),
            Finish(d, "w", failed=True, error="already done"),
            Finish(uuid.uuid4().hex, "w", failed=False),
            Finish(b, "w", failed=False, output=2),
        ]
    )
    assert answers == [
        Ingest.STORED,
        Ingest.STORED,
        Ingest.DUPLICATE,
        Ingest.DUPLICATE,
        Ingest.UNKNOWN,
        Ingest.STORED,
    ]
    one, two = await store.get_job(first), await store.get_job(second)
    assert one is not None and two is not None
    assert (one.summary.state, one.summary.done, one.summary.failed) == ("done", 2, 0)
    assert (two.summary.state, two.summary.done, two.summary.failed) == ("failed", 1, 1)
    assert one.summary.finished_at is not None and two.summary.finished_at is not None
    tasks = {t.task_id: t for t in [*one.tasks, *two.tasks]}
    assert (tasks[a].state, tasks[a].output) == ("done", 1)
    assert (tasks[c].state, tasks[c].error) == ("failed", "boom")
    assert tasks[d].state == "done"


async def test_one_failed_task_fails_the_job_and_keeps_the_last_attempts_error(
    store: Store,
) -> None:
    job_id, (a, b) = uuid.uuid4().hex, ids(2)
    await store.create_job(job_id, "task", "sleep", "", [NewTask(a, "sleep"), NewTask(b, "sleep")])
    await store.note_attempt(a, "w1", "a pool process died")
    await store.finish(Finish(a, None, failed=True, error="gave up at the delivery limit"))
    await store.finish(Finish(b, "w2", failed=False, output=1))
    job = await store.get_job(job_id)
    assert job is not None and job.summary.state == "failed"
    task = job.tasks[0]
    assert task.state == "failed" and task.error is not None
    assert "delivery limit" in task.error and "pool process died" in task.error
    assert task.attempts == 1


async def test_unknown_task_outcome_is_reported_unknown(store: Store) -> None:
    assert await store.finish(Finish(uuid.uuid4().hex, "w", failed=False)) is Ingest.UNKNOWN


async def test_jobs_survive_a_restart_and_unpublished_tasks_are_found(tmp_path: Path) -> None:
    path = tmp_path / "sd.sqlite3"
    first = Store(path)
    await first.start()
    job_id, (a, b) = uuid.uuid4().hex, ids(2)
    await first.create_job(job_id, "task", "sleep", "", [NewTask(a, "sleep"), NewTask(b, "sleep")])
    await first.mark_published([a])
    await first.finish(Finish(a, "w", failed=False, output=None))
    await first.stop()

    second = Store(path)
    await second.start()
    try:
        job = await second.get_job(job_id)
        assert job is not None and job.summary.done == 1
        unpublished = await second.unfinished_tasks(unpublished_only=True)
        assert [t.task_id for t in unpublished] == [b]
        assert (await second.totals()).pending == 1
    finally:
        await second.stop()


async def test_rows_give_the_api_the_json_it_sends(store: Store) -> None:
    job_id, (a, b) = uuid.uuid4().hex, ids(2)
    await store.create_job(job_id, "task", "sleep", "", [NewTask(a, "sleep"), NewTask(b, "sleep")])
    await store.finish(Finish(b, "w", failed=False, output={"n": 1}))
    job = await store.get_job(job_id, tasks_limit=1)
    assert job is not None
    body = job.as_json()
    summary_keys = "job_id state total done failed cancelled open copies created_at finished_at"
    assert list(body) == f"{summary_keys} ops kind name tasks tasks_next".split()
    assert (body["state"], body["done"], body["kind"]) == ("running", 1, "task")
    assert body["tasks_next"] == 1  # the second task starts the next page
    task_keys = "task_id state type worker result output error input filename attempts seq copy"
    assert list(body["tasks"][0]) == f"{task_keys} dup_of finished_seq rerun".split()
    finished = (await store.tasks_page(job_id, order="finished")).as_json()
    assert finished == {"tasks": [finished["tasks"][0]], "next": 1}
    assert finished["tasks"][0]["output"] == {"n": 1}
    totals = (await store.totals()).as_json()
    assert totals == dict(total=2, done=1, failed=0, cancelled=0, pending=1, queued=1, running=0)


async def test_store_refuses_use_before_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="before start"):
        await Store(tmp_path / "x.db").list_jobs()


def test_job_state_rules() -> None:
    assert job_state(3, 0, 0, 0) == "queued"
    assert job_state(3, 1, 0, 1) == "running"
    assert job_state(3, 3, 0, 1) == "done"
    assert job_state(3, 2, 1, 1) == "failed"


def test_task_ids_are_32_hex_digits_unique_in_order_and_never_shared_by_two_jobs() -> None:
    from sd_coordinator.submit import _new_ids

    first, second = _new_ids(3000), _new_ids(3000)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in first + second)
    assert first == sorted(first) and len(set(first)) == 3000
    assert not set(first) & set(second)
