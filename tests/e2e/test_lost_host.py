"""A worker that stops reporting, or lags far behind, costs seconds: its tasks run elsewhere."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from sd_common.messages import TaskMessage
from support.broker import AMQP_URL
from support.cluster import Cluster

pytestmark = pytest.mark.e2e

TESTS_DIR = Path(__file__).resolve().parents[1]
NAP_TASKS = {
    "TASK_MODULES": "support.nap_tasks",
    "PYTHONPATH": os.pathsep.join(p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH")) if p),
}


def start(cluster: Cluster, *workers: str) -> None:
    cluster.env.update(NAP_TASKS)
    cluster.start_coordinator()
    for name in workers:
        cluster.start_worker(name, NODE_NAME=name)
    cluster.wait_consuming(*workers)


def naps(cluster: Cluster, copies: int, seconds: float, **payload: Any) -> str:
    return str(cluster.submit_task("nap", {"seconds": seconds, **payload}, copies)["job_id"])


def running_on(cluster: Cluster, job_id: str, worker: str) -> bool:
    return any(
        t["worker"] == worker and t["state"] == "running" for t in cluster.job(job_id)["tasks"]
    )


def test_a_stalled_workers_tasks_run_elsewhere_within_seconds_and_it_comes_back(
    cluster: Cluster,
) -> None:
    start(cluster, "alfa", "beta")
    job_id = naps(cluster, copies=16, seconds=3)
    cluster.wait_until(lambda: running_on(cluster, job_id, "beta"), 30, "beta to run a task")
    cluster.wait_until(
        lambda: cluster.worker("beta").get("holding", 0) > 0,
        10,
        "the coordinator to know what beta holds",
    )
    beta = cluster.procs["beta"].pid
    os.killpg(beta, signal.SIGSTOP)  # its machine sleeps: no reports, no acks, link open
    stopped_at = time.monotonic()
    try:
        cluster.wait_until(
            lambda: cluster.worker("beta").get("alive") is False, 10, "beta to show offline"
        )
        job = cluster.wait_job(job_id, timeout_s=60)
        took_s = time.monotonic() - stopped_at
    finally:
        os.killpg(beta, signal.SIGCONT)

    # Without backup runs the job waits for the broker to drop beta's connection (minutes).
    assert took_s < 15, f"the job finished {took_s:.1f} s after beta stalled\n{cluster.log_tail()}"
    assert (job["state"], job["done"], job["failed"], job["total"]) == ("done", 16, 0, 16)
    rerun = [t for t in job["tasks"] if t["rerun"]]
    # By name when beta's last report listed them; deliveries it got after that report (or
    # backups the broker still handed its open connection) as held by no live worker.
    assert any(t["rerun"] == "host lost: beta" for t in rerun), job["tasks"]
    assert all(t["rerun"] in ("host lost: beta", "host lost") for t in rerun), job["tasks"]
    assert all(t["worker"] == "alfa" for t in rerun), rerun

    # beta wakes up: its late results are duplicates, the deliveries it held are settled, and
    # it is live again and takes work in the next job, with no restart by hand.
    cluster.wait_until(lambda: cluster.worker("beta").get("alive") is True, 20, "beta back")
    second = cluster.wait_job(naps(cluster, copies=16, seconds=1))
    assert second["state"] == "done"
    assert {t["worker"] for t in second["tasks"]} == {"alfa", "beta"}, second["tasks"]
    again = cluster.job(job_id)
    assert (again["done"], again["failed"]) == (16, 0)
    assert all(t["worker"] == "alfa" for t in again["tasks"] if t["rerun"])
    log = cluster.logs["beta"].read_text()
    assert "Traceback" not in log, log


def test_a_straggler_does_not_hold_a_jobs_last_tasks_hostage(cluster: Cluster) -> None:
    start(cluster, "alfa", "slow")
    started = time.monotonic()
    job_id = naps(cluster, copies=12, seconds=0.3, slow_node="slow", slow_factor=100)
    job = cluster.wait_job(job_id, timeout_s=60)
    took_s = time.monotonic() - started

    # slow's share would take 30 s; backups on the idle alfa finish it in a few.
    assert took_s < 15, f"the job took {took_s:.1f} s\n{cluster.log_tail()}"
    assert (job["state"], job["done"], job["failed"]) == ("done", 12, 0)
    rerun = [t for t in job["tasks"] if t["rerun"]]
    assert rerun and all(t["rerun"] == "straggler: slow" for t in rerun), job["tasks"]
    assert all(t["output"] == {"node": "alfa"} for t in rerun), rerun
    # slow learns at its next report that its copies are done, and stops waiting on them.
    cluster.wait_until(
        lambda: "finished elsewhere meanwhile" in cluster.logs["slow"].read_text(),
        10,
        "slow to drop its settled copies",
    )
    cluster.wait_until(
        lambda: cluster.worker("slow").get("holding") == 0,
        5,
        "slow to report that it holds nothing",
    )


async def publish_copy(queue: str, job_id: str, task_id: str, params: dict[str, Any]) -> None:
    """Publish a task's message once more, as the coordinator publishes a backup run."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        body = TaskMessage(task_id=task_id, job_id=job_id, type="nap", params=params)
        await channel.default_exchange.publish(
            aio_pika.Message(
                body.model_dump_json().encode(),
                message_id=task_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=queue,
        )


def test_a_copy_of_a_task_its_straggler_runs_goes_back_to_the_queue_for_another_worker(
    cluster: Cluster,
) -> None:
    # Room for many returns under the delivery limit, so the test can start alfa at leisure.
    cluster.env["DELIVERY_LIMIT"] = "20"
    start(cluster, "slow")
    params = {"seconds": 0.3, "slow_node": "slow", "slow_factor": 100}
    job_id = naps(cluster, copies=1, **params)
    cluster.wait_until(lambda: running_on(cluster, job_id, "slow"), 30, "slow to run the task")
    task_id = cluster.job(job_id)["tasks"][0]["task_id"]
    assert cluster.queue is not None
    asyncio.run(publish_copy(cluster.queue, job_id, task_id, params))
    returned = "returned to the queue for another worker"
    cluster.wait_until(
        lambda: returned in cluster.logs["slow"].read_text(), 10, "slow to return the copy"
    )

    started = time.monotonic()
    cluster.start_worker("alfa", NODE_NAME="alfa")
    job = cluster.wait_job(job_id, timeout_s=20)
    # Before, slow acked the copy with its own run, and the job waited its 30 s.
    assert time.monotonic() - started < 15, cluster.log_tail()
    assert (job["state"], job["done"]) == ("done", 1)
    assert job["tasks"][0]["output"] == {"node": "alfa"}, job["tasks"]
    cluster.kill("slow")  # its own 30 s run has nothing left to show
