"""Fault tolerance end to end (DESIGN §5): real processes killed, restarted and signalled while
they work, on the real broker. Outcomes are checked by counts, states, pixels and /workers."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from PIL import Image, ImageFilter, ImageOps

from sd_coordinator.transport import MESSAGES_MIN
from sd_worker.worker_async import DRAIN_TIMEOUT_S
from support.broker import queue_counts
from support.cluster import Cluster
from support.images import decode, same_pixels, sample_image
from support.rabbitctl import rabbitmq_stopped

pytestmark = pytest.mark.e2e

BIG = (1280, 960)
SLOW_OPS = "blur:4"
REPORT_INTERVAL_S = 1.0  # the default; a worker silent for 3 of them shows alive: false
TESTS_DIR = Path(__file__).resolve().parents[1]


def blurred(data: bytes, radius: float = 4) -> Image.Image:
    """`blur:radius` done by hand with Pillow."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    return image.filter(ImageFilter.GaussianBlur(radius))


def wait_done_at_least(
    cluster: Cluster, job_id: str, done: int, timeout_s: float = 60
) -> dict[str, Any]:
    """Wait until `done` tasks of the job are done (and the job is not finished yet)."""
    job: dict[str, Any] = {}

    def reached() -> bool:
        nonlocal job
        job = cluster.job(job_id)
        return int(job["done"]) >= done

    cluster.wait_until(reached, timeout_s, f"{done} tasks of job {job_id} done")
    assert job["state"] == "running", f"the job finished before the fault: {job['state']}"
    return job


def use_poison_tasks(cluster: Cluster, delivery_limit: int) -> None:
    """Coordinator and workers (pool processes too) load the `crash` task type."""
    cluster.env.update(
        TASK_MODULES="support.poison_tasks",
        PYTHONPATH=os.pathsep.join(p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH")) if p),
        DELIVERY_LIMIT=str(delivery_limit),
    )


def start_two_workers(cluster: Cluster) -> None:
    """The coordinator, and workers alfa and beta both consuming before a job arrives: a
    worker alone on the queue takes its whole prefetch window at once, and the other would then
    hold nothing to lose."""
    cluster.start_coordinator()
    cluster.start_worker("alfa")
    cluster.start_worker("beta")
    cluster.wait_consuming("alfa", "beta")


def assert_completed_once(cluster: Cluster, job: dict[str, Any], data: bytes) -> None:
    """Every task done exactly once: one result file each, nothing more, pixels right."""
    total = job["total"]
    assert (job["state"], job["done"], job["failed"]) == ("done", total, 0), job
    assert all(t["state"] == "done" and t["error"] is None for t in job["tasks"])
    results = [t["result"] for t in job["tasks"]]
    assert results == [f"{t['task_id']}.png" for t in job["tasks"]]
    stored = sorted(p.name for p in cluster.results_dir.iterdir() if not p.name.startswith("."))
    assert stored == sorted(results), "the results folder holds exactly one file per task"
    expected = blurred(data)
    with cluster.client() as client:
        for name in results[:: max(1, total // 6)]:
            response = client.get(f"/result/{name}")
            assert response.status_code == 200
            assert same_pixels(decode(response.content), expected)


def test_killed_worker_tasks_are_redelivered_and_done_once(cluster: Cluster) -> None:
    start_two_workers(cluster)
    # Four times BIG: a task takes long enough (~0.4 s) to still be running at the kill.
    data = sample_image(BIG[0] * 2, BIG[1] * 2, seed=11)
    sent = cluster.upload([("grande.jpg", data)], ops=SLOW_OPS, copies=60)
    wait_done_at_least(cluster, sent["job_id"], 6)

    # "busy" in beta's report can come before its next /working has marked the tasks it holds
    # running (at most one a second): wait for the coordinator to record some, or the kill may
    # find nothing to orphan. Two (one a pool process), so that one stored between this look
    # and the kill still leaves the other.
    held: set[str] = set()

    def beta_holds_started_tasks() -> bool:
        nonlocal held
        held = {
            t["task_id"]
            for t in cluster.job(sent["job_id"])["tasks"]
            if t["state"] == "running" and t["worker"] == "beta"
        }
        return len(held) >= 2

    cluster.wait_until(beta_holds_started_tasks, 30, "beta to hold started tasks")

    # kill -9 of the worker process alone, as the OOM killer would: its pool must not outlive it.
    worker = psutil.Process(cluster.procs["beta"].pid)
    pool = worker.children(recursive=True)
    assert pool, "beta has no pool processes yet"
    worker.kill()
    cluster.procs["beta"].wait(timeout=10)
    killed_at = time.monotonic()

    cluster.wait_until(
        lambda: cluster.worker("beta").get("alive") is False, 10, "beta to show alive: false"
    )
    seen_dead_after_s = time.monotonic() - killed_at
    beta = cluster.worker("beta")
    assert beta["status"] == "offline" and beta["task_id"] is None
    assert seen_dead_after_s < 3 * REPORT_INTERVAL_S + 3
    assert cluster.worker("alfa")["alive"] is True
    _, alive = psutil.wait_procs(pool, timeout=15)
    assert not alive, f"beta's pool outlived it: {alive}"

    job = cluster.wait_job(sent["job_id"], timeout_s=90)
    assert_completed_once(cluster, job, data)
    # What beta had started when it was killed and never stored: the broker gave it to alfa,
    # which did it (alfa may well have done it before beta showed offline).
    by_task = {t["task_id"]: t for t in job["tasks"]}
    orphaned = {t for t in held if by_task[t]["worker"] == "alfa"}
    assert orphaned, "beta stored every task it held before it was killed; it proved nothing"

    snapshot = cluster.snapshot()
    assert snapshot["totals"] == {
        "total": 60,
        "done": 60,
        "failed": 0,
        "cancelled": 0,
        "pending": 0,
        "queued": 0,
        "running": 0,
    }
    # Duplicates (a result beta stored but never acked) must not count as throughput.
    assert snapshot["tps"] * 5.0 <= 60 + 1e-6
    assert asyncio.run(queue_counts(cluster.queue)) == (0, 0)


def test_a_killed_worker_loses_no_task_of_the_messages_of_several_tasks_it_held(
    cluster: Cluster,
) -> None:
    start_two_workers(cluster)
    data = sample_image(640, 480, seed=13)
    # Three tasks a message (transport.tasks_per_message).
    sent = cluster.upload([("media.jpg", data)], ops=SLOW_OPS, copies=MESSAGES_MIN * 3)
    wait_done_at_least(cluster, sent["job_id"], 10)
    cluster.wait_until(
        lambda: any(
            t["state"] == "running" and t["worker"] == "beta"
            for t in cluster.job(sent["job_id"])["tasks"]
        ),
        30,
        "beta to hold started tasks",
    )
    cluster.kill("beta")

    job = cluster.wait_job(sent["job_id"], timeout_s=120)
    assert_completed_once(cluster, job, data)
    assert asyncio.run(queue_counts(cluster.queue)) == (0, 0)


def test_sigtermed_worker_finishes_its_tasks_acks_them_and_exits_0(cluster: Cluster) -> None:
    cluster.start_coordinator()
    cluster.start_worker("alfa")
    data = sample_image(640, 480, seed=12)
    sent = cluster.upload([("media.jpg", data)], ops=SLOW_OPS, copies=100)
    before = wait_done_at_least(cluster, sent["job_id"], 4)

    asked_at = time.monotonic()
    # To the process group, as Ctrl-C in a terminal or systemd's stop would.
    code = cluster.send_signal("alfa", signal.SIGTERM, timeout_s=DRAIN_TIMEOUT_S + 10)
    assert code == 0, cluster.log_tail()
    assert time.monotonic() - asked_at < DRAIN_TIMEOUT_S
    assert "draining" in cluster.logs["alfa"].read_text()

    after = cluster.job(sent["job_id"])
    assert after["failed"] == 0
    assert after["done"] > before["done"], "it finished the tasks it held"
    mine = [t for t in after["tasks"] if t["worker"] == "alfa"]
    assert mine and all(t["state"] == "done" and t["attempts"] == 0 for t in mine), [
        (t["task_id"], t["state"], t["attempts"], t["error"]) for t in mine if t["state"] != "done"
    ]
    # Every finished task was acked and every other one is back in the queue: nothing lost,
    # nothing left to run twice.
    ready, dead = asyncio.run(queue_counts(cluster.queue))
    assert (ready, dead) == (after["total"] - after["done"], 0)

    cluster.start_worker("beta")
    job = cluster.wait_job(sent["job_id"], timeout_s=90)
    assert_completed_once(cluster, job, data)


def test_poison_task_fails_at_the_delivery_limit_and_the_queue_keeps_flowing(
    cluster: Cluster,
) -> None:
    delivery_limit = 2
    use_poison_tasks(cluster, delivery_limit)
    cluster.start_coordinator()
    cluster.start_worker("alfa")

    sent = cluster.submit_task("crash", {})
    job = cluster.wait_job(sent["job_id"], timeout_s=60)

    assert (job["state"], job["done"], job["failed"]) == ("failed", 0, 1), job
    task = job["tasks"][0]
    assert task["state"] == "failed"
    assert "delivery limit" in task["error"], task
    assert "pool process died" in task["error"], task
    assert task["attempts"] >= delivery_limit, task
    # The coordinator consumed the dead letter: nothing waits in either queue.
    cluster.wait_until(
        lambda: asyncio.run(queue_counts(cluster.queue, delivery_limit)) == (0, 0),
        10,
        "both queues to be empty",
    )
    assert f"task {task['task_id']} failed" in cluster.logs["coordinator"].read_text()

    assert cluster.running("alfa")
    data = sample_image(seed=13)
    after = cluster.upload([("normal.jpg", data)], ops="blur:4", copies=8)
    assert_completed_once(cluster, cluster.wait_job(after["job_id"], timeout_s=60), data)
    assert cluster.worker("alfa")["alive"] is True


def test_poison_task_running_beside_normal_tasks_fails_alone(cluster: Cluster) -> None:
    use_poison_tasks(cluster, delivery_limit=2)
    cluster.start_coordinator()
    cluster.start_worker("alfa")
    data = sample_image(640, 480, seed=14)
    # First in the queue: it is delivered, and crashes the pool, together with normal tasks.
    poison = cluster.submit_task("crash", {})
    normal = cluster.upload([("normal.jpg", data)], ops=SLOW_OPS, copies=16)

    poison_job = cluster.wait_job(poison["job_id"], timeout_s=60)
    assert poison_job["state"] == "failed"
    assert "delivery limit" in poison_job["tasks"][0]["error"]
    job = cluster.wait_job(normal["job_id"], timeout_s=60)
    assert_completed_once(cluster, job, data)
    # The tasks that shared the pool with it were never sent back to the queue for its crash.
    assert all(t["attempts"] == 0 for t in job["tasks"]), job["tasks"]
    assert cluster.logs["alfa"].read_text().count("a pool process died") >= 2


def test_rabbitmq_restart_mid_job_loses_nothing_and_new_uploads_work(cluster: Cluster) -> None:
    start_two_workers(cluster)
    data = sample_image(*BIG, seed=15)
    sent = cluster.upload([("grande.jpg", data)], ops=SLOW_OPS, copies=40)
    wait_done_at_least(cluster, sent["job_id"], 6)

    with rabbitmq_stopped():
        asked_at = time.monotonic()
        with cluster.client(timeout_s=60) as client:
            refused = client.post(
                "/upload",
                files=[("file", ("otra.jpg", data))],
                data={"ops": "grayscale", "copies": "3"},
            )
        assert refused.status_code == 503, refused.text
        assert "RabbitMQ" in refused.json()["detail"]
        assert time.monotonic() - asked_at < 30
        # The rest of the API keeps answering while the broker is away, and says it is away.
        assert cluster.job(sent["job_id"])["total"] == 40
        asked_at = time.monotonic()
        with cluster.client(timeout_s=30) as client:
            queue_size = client.get("/queue_size")
        assert queue_size.status_code == 503 and "RabbitMQ" in queue_size.json()["detail"]
        assert cluster.snapshot()["queue_size"] == -1
        assert time.monotonic() - asked_at < 10
        assert cluster.running("alfa") and cluster.running("beta")

    job = cluster.wait_job(sent["job_id"], timeout_s=120)
    assert_completed_once(cluster, job, data)
    assert cluster.running("alfa") and cluster.running("beta")

    after = cluster.upload([("despues.jpg", sample_image(seed=17))], ops=SLOW_OPS, copies=4)
    assert cluster.wait_job(after["job_id"], timeout_s=60)["done"] == 4
    with cluster.client() as client:
        jobs = client.get("/jobs").json()
    assert sorted(j["job_id"] for j in jobs) == sorted([sent["job_id"], after["job_id"]]), (
        "the upload refused during the outage left no job behind"
    )


def test_coordinator_killed_mid_job_restarts_with_its_data_and_workers_return(
    cluster: Cluster,
) -> None:
    start_two_workers(cluster)
    data = sample_image(*BIG, seed=16)
    sent = cluster.upload([("grande.jpg", data)], ops=SLOW_OPS, copies=40)
    before = wait_done_at_least(cluster, sent["job_id"], 6)
    with cluster.client() as client:
        fetched = {
            t["result"]: client.get(f"/result/{t['result']}").content
            for t in before["tasks"]
            if t["state"] == "done"
        }

    cluster.kill("coordinator")
    # The workers go on computing and hold their results, retrying, until it is back.
    for name in ("alfa", "beta"):
        cluster.wait_until(
            lambda n=name: "unreachable" in cluster.logs[n].read_text(),
            30,
            f"{name} to hold its results and retry",
        )
    cluster.start_coordinator()

    with cluster.client() as client:
        for name, content in fetched.items():
            again = client.get(f"/result/{name}")
            assert again.status_code == 200 and again.content == content
    # They register again by themselves (their next report is answered 404).
    cluster.wait_until(
        lambda: all(cluster.worker(n).get("alive") for n in ("alfa", "beta")),
        15,
        "both workers to register again",
    )
    job = cluster.wait_job(sent["job_id"], timeout_s=120)
    assert_completed_once(cluster, job, data)
    assert cluster.snapshot()["totals"]["done"] == 40


def test_embedded_coordinator_killed_mid_job_requeues_unfinished_tasks(
    embedded_cluster: Cluster,
) -> None:
    cluster = embedded_cluster
    cluster.start_coordinator()
    sent = cluster.submit_task("sleep", {"seconds": 1}, copies=16)
    before = wait_done_at_least(cluster, sent["job_id"], 4)
    done_before = {t["task_id"]: t for t in before["tasks"] if t["state"] == "done"}

    cluster.kill("coordinator")
    cluster.start_coordinator()

    job = cluster.wait_job(sent["job_id"], timeout_s=60)
    assert (job["state"], job["done"], job["failed"]) == ("done", 16, 0), job
    assert all(t["output"] == {"slept": 1.0} for t in job["tasks"])
    by_task = {t["task_id"]: t for t in job["tasks"]}
    assert all(by_task[i] == t for i, t in done_before.items()), "finished tasks ran again"
    requeued = [
        int(line.split("re-enqueued ")[1].split()[0])
        for line in cluster.logs["coordinator"].read_text().splitlines()
        if "re-enqueued " in line
    ]
    assert len(requeued) == 1 and 1 <= requeued[0] <= 16 - len(done_before), requeued
