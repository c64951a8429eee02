"""Cancelling a job on RabbitMQ: workers skip its queued tasks without running them."""

from __future__ import annotations

import time

import pytest

from support.cluster import Cluster

pytestmark = pytest.mark.e2e


def test_a_cancelled_jobs_queue_drains_without_its_tasks_running(cluster: Cluster) -> None:
    cluster.start_coordinator()
    cluster.start_worker("alfa")
    sent = cluster.submit_task("sleep", {"seconds": 5}, copies=1000)
    # Run until the worker is busy with the first ones, then cancel.
    cluster.wait_until(lambda: cluster.worker("alfa").get("status") == "busy", 30, "work")
    with cluster.client() as client:
        answer = client.post(f"/jobs/{sent['job_id']}/cancel")
        assert answer.status_code == 200 and answer.json()["state"] == "cancelled"
        # 1 000 five-second tasks would keep one worker busy for minutes; skipped, the queue
        # is empty within a few report intervals.
        started = time.monotonic()
        cluster.wait_until(
            lambda: client.get("/queue_size").json()["pending_tasks"] == 0, 30, "the queue"
        )
        drained_s = time.monotonic() - started
        job = client.get(f"/jobs/{sent['job_id']}", params={"limit": 0}).json()
    assert job["state"] == "cancelled" and job["done"] == 0, job
    assert job["cancelled"] == 1000
    assert drained_s < 30
    # What the worker ran at most: the tasks it held when the cancel came.
    processed = cluster.worker("alfa")["processed"]
    assert processed < 300, processed
