"""The embedded default's local worker when the disk of DATA_DIR fills up in the middle of a job:
its tasks wait queued (not failed, however long it lasts), the log says so in a line now and
then, and the job finishes once there is room again."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

from PIL import Image, ImageOps

from support.cluster import Cluster
from support.images import decode, same_pixels, sample_image

FULL_LINE = "is full: the local worker cannot store results"


def fill(disk: Path, leave: int) -> Path:
    """A file that takes all of `disk` but `leave` bytes."""
    stat = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return filler


def free_and_finish(
    cluster: Cluster,
    filler: Path,
    job: tuple[str, list[tuple[str, bytes]], int],
    log_file: Path,
) -> str:
    """Free the disk, then wait for the job (id, photos, copies): every task done, none
    failed, each photo's result Pillow's own grayscale, no traceback in `log_file`; its text."""
    filler.unlink()
    job_id, photos, copies = job
    done = cluster.wait_job(job_id)
    assert (done["state"], done["done"], done["failed"]) == ("done", len(photos) * copies, 0), done
    with cluster.client() as client:
        for name, data in photos:
            task = next(t for t in done["tasks"] if t["filename"] == name)
            result = client.get(f"/result/{task['result']}")
            expected = ImageOps.grayscale(Image.open(io.BytesIO(data)))
            assert same_pixels(decode(result.content), expected), name
    log = log_file.read_text()
    assert "Traceback" not in log, log[-3000:]
    return log


def test_a_full_disk_keeps_the_local_workers_tasks_queued_and_says_so_once(
    embedded_cluster: Cluster, small_disk: Path
) -> None:
    # Two deliveries at most: a full disk that counted as a failed try would fail the tasks.
    embedded_cluster.start_coordinator(DATA_DIR=str(small_disk), DELIVERY_LIMIT="2")
    photos = [("p.jpg", sample_image(400, 300, seed=1))]  # ~46 KB; each result ~110 KB
    filler = fill(small_disk, leave=600 * 1024)
    job_id = embedded_cluster.upload(photos, copies=12)["job_id"]

    log_file = embedded_cluster.logs["coordinator"]
    embedded_cluster.wait_until(lambda: FULL_LINE in log_file.read_text(), 30, "a full disk")
    time.sleep(5)  # a while full: the tasks wait, none fails however long it lasts
    log = log_file.read_text()
    said = [line for line in log.splitlines() if "[Errno 28]" in line or "disk is full" in line]
    # The local worker's line and the task processor's, each once in 30 s.
    assert log.count(FULL_LINE) == 1 and len(said) <= 2, log[-3000:]
    assert embedded_cluster.job(job_id)["failed"] == 0

    log = free_and_finish(embedded_cluster, filler, (job_id, photos, 12), log_file)
    assert "DATA_DIR has room again" in log, log[-3000:]


def test_a_worker_whose_disk_fills_up_pauses_and_its_tasks_wait_for_it(
    cluster: Cluster, small_disk: Path
) -> None:
    # Two deliveries at most: a worker that kept consuming would hand every task back, failed.
    cluster.start_coordinator(DELIVERY_LIMIT="2")
    cluster.start_worker("w1", DATA_DIR=str(small_disk), SHARED_STORAGE="off", DELIVERY_LIMIT="2")
    filler = fill(small_disk, leave=16 * 1024)  # its input cache cannot take a ~46 KB photo
    photos = [(f"p{i}.jpg", sample_image(400, 300, seed=i)) for i in range(6)]
    job_id = cluster.upload(photos, copies=2)["job_id"]

    log_file = cluster.logs["w1"]
    cluster.wait_until(lambda: "consuming paused" in log_file.read_text(), 30, "a paused worker")
    time.sleep(4)  # paused, it takes nothing more: no task reaches its delivery limit
    job = cluster.job(job_id)
    assert (job["failed"], job["done"]) == (0, 0), job
    seen = cluster.worker("w1")
    assert (seen["status"], seen["paused_for"]) == ("paused", ["disk"]), seen
    assert log_file.read_text().count("consuming paused") == 1

    log = free_and_finish(cluster, filler, (job_id, photos, 2), log_file)
    assert "consuming resumes" in log, log[-3000:]


def test_a_worker_holds_its_results_while_the_coordinators_disk_is_full(
    cluster: Cluster, small_disk: Path, tmp_path: Path
) -> None:
    cluster.start_coordinator(DATA_DIR=str(small_disk))
    photos = [(f"p{i}.jpg", sample_image(400, 300, seed=i)) for i in range(4)]
    job_id = cluster.upload(photos, copies=2)["job_id"]
    filler = fill(small_disk, leave=0)  # each result (~110 KB) answers 507
    cluster.start_worker("w1", DATA_DIR=str(tmp_path / "w1-data"), SHARED_STORAGE="off")

    log_file = cluster.logs["w1"]
    cluster.wait_until(lambda: "answered 507" in log_file.read_text(), 30, "a 507")
    time.sleep(3)
    assert cluster.job(job_id)["done"] == 0
    # The worker retried; the coordinator said it once, not once a request.
    coordinator_log = cluster.logs["coordinator"].read_text()
    assert coordinator_log.count("the disk of DATA_DIR") == 1, coordinator_log[-3000:]

    log = free_and_finish(cluster, filler, (job_id, photos, 2), log_file)
    assert "the coordinator's disk is full" in log, log[-3000:]
    assert "unreachable" not in log, log[-3000:]
