"""`sd-worker --async` on the real broker: an unexpected exception (a PermissionError writing
results/) ends the task with its reason; the delivery is settled, never left holding a slot."""

from __future__ import annotations

import pytest

from support.api import png_bytes
from support.cluster import Cluster
from support.immutable import immutable

pytestmark = pytest.mark.e2e


def test_a_disk_that_refuses_results_fails_the_task_and_the_worker_goes_on(
    cluster: Cluster,
) -> None:
    cluster.start_coordinator(DELIVERY_LIMIT="2")
    cluster.start_worker("unlucky", DELIVERY_LIMIT="2")  # shares the coordinator's DATA_DIR
    with immutable(cluster.results_dir):
        sent = cluster.upload([("a.png", png_bytes())], copies=3)
        job = cluster.wait_job(sent["job_id"], timeout_s=60)
    assert job["state"] == "failed", job
    assert all("PermissionError" in t["error"] for t in job["tasks"]), job["tasks"]

    job = cluster.wait_job(cluster.upload([("b.png", png_bytes())], copies=3)["job_id"], 60)
    assert job["state"] == "done", job
    assert cluster.running("unlucky")
