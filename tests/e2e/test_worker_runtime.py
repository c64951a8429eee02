"""The worker's live tuning and back-pressure, observed from the coordinator's /workers."""

from __future__ import annotations

import time

import pytest

from support.cluster import Cluster

pytestmark = pytest.mark.e2e


def test_worker_raises_prefetch_live_when_the_queue_grows(cluster: Cluster) -> None:
    cluster.start_coordinator()
    cluster.start_worker("tuner", TUNE_INTERVAL_S="0.5")
    cluster.wait_until(lambda: cluster.worker("tuner").get("consumers", 0) >= 1, 10,
                       "the worker's first report")  # fmt: skip
    idle = cluster.worker("tuner")
    assert idle["prefetch"] >= 1

    with cluster.client() as client:
        sent = client.post("/task", json={"type": "sleep", "payload": {"seconds": 0.5},
                                          "copies": 1000})  # fmt: skip
        assert sent.status_code == 202
    cluster.wait_until(
        lambda: cluster.worker("tuner").get("prefetch", 0) > idle["prefetch"], 45,
        "the worker to raise its prefetch from the queue depth",
    )  # fmt: skip
    # Still the same process and registration: tuned live, not restarted.
    assert cluster.procs["tuner"].poll() is None
    cluster.wait_until(lambda: cluster.worker("tuner").get("processed", 0) > 0, 20,
                       "the tuned worker to report processed tasks")  # fmt: skip


def test_cpu_limit_pauses_consuming_instead_of_taking_tasks(cluster: Cluster) -> None:
    cluster.start_coordinator()
    # Any CPU use is above 0.01 %: the worker must pause and leave the tasks in the queue.
    cluster.start_worker("calm", CPU_LIMIT="0.01")
    cluster.wait_until(lambda: cluster.worker("calm").get("status") == "paused", 15,
                       "the worker to report paused")  # fmt: skip
    with cluster.client() as client:
        sent = client.post("/task", json={"type": "sleep", "payload": {"seconds": 0},
                                          "copies": 5}).json()  # fmt: skip
        time.sleep(3)
        job = client.get(f"/jobs/{sent['job_id']}").json()
        assert job["done"] == 0
        assert client.get("/queue_size").json()["pending_tasks"] == 5
    assert cluster.worker("calm")["alive"] is True
