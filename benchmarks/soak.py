"""Soak: 10 000 tasks through a coordinator and two workers on the real RabbitMQ.

Checks that nothing is lost (every job's counts exact, one result file per image task, both
queues empty), samples the coordinator's peak RSS, and measures GET /workers latency while the
load runs. Writes benchmarks/SOAK.md. Usage: `.venv/bin/python benchmarks/soak.py [--tasks N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks.harness import RssSampler, tree  # noqa: E402
from support.broker import delete_queues, queue_counts, unique_queue  # noqa: E402
from support.cluster import Cluster  # noqa: E402
from support.images import sample_image  # noqa: E402

IMAGE_SHARE = 0.1  # a tenth of the tasks are thumbnails, the rest no-op `sleep 0` tasks
BATCH = 1000  # copies per submission (the API's maximum)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def probe_workers(url: str, stop: threading.Event, latencies_ms: list[float]) -> None:
    """GET /workers in a loop, as a dashboard-less monitor would, recording latency."""
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            started = time.perf_counter()
            response = client.get("/workers")
            latencies_ms.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            stop.wait(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "SOAK.md")
    args = parser.parse_args()
    images = int(args.tasks * IMAGE_SHARE)
    noops = args.tasks - images
    queue = unique_queue()
    root = Path(tempfile.mkdtemp(prefix="sd-soak-"))
    cluster = Cluster(root, queue=queue)
    latencies_ms: list[float] = []
    stop = threading.Event()
    try:
        cluster.start_coordinator()
        cluster.start_worker("soak-a")
        cluster.start_worker("soak-b")
        coordinator = cluster.procs["coordinator"].pid
        sampler = RssSampler({"coordinator": lambda: tree(coordinator)})
        probe = threading.Thread(target=probe_workers, args=(cluster.url, stop, latencies_ms))
        started = time.monotonic()
        with sampler:
            probe.start()
            jobs: list[str] = []
            with cluster.client() as client:
                for offset in range(0, noops, BATCH):
                    copies = min(BATCH, noops - offset)
                    answer = client.post(
                        "/task", json={"type": "sleep", "payload": {"seconds": 0}, "copies": copies}
                    )
                    answer.raise_for_status()
                    jobs.append(answer.json()["job_id"])
                image = sample_image(640, 480, seed=7)
                for offset in range(0, images, BATCH):
                    copies = min(BATCH, images - offset)
                    jobs.append(
                        cluster.upload([("soak.jpg", image)], ops="thumbnail:128", copies=copies)[
                            "job_id"
                        ]
                    )
            finished = [cluster.wait_job(job_id, timeout_s=1800) for job_id in jobs]
            elapsed = time.monotonic() - started
            stop.set()
            probe.join()
        done = sum(job["done"] for job in finished)
        failed = sum(job["failed"] for job in finished)
        result_files = len(list((root / "coordinator" / "results").glob("*.png")))
        ready, dead = asyncio.run(queue_counts(queue))
        time.sleep(2.5)  # workers report their counters every second
        workers = {name: cluster.worker(name)["processed"] for name in ("soak-a", "soak-b")}
    finally:
        stop.set()
        cluster.stop()
        asyncio.run(delete_queues(queue))

    lost = args.tasks - done - failed
    rows = [
        ("tasks submitted", f"{args.tasks} ({noops} sleep 0, {images} thumbnails of one 640x480)"),
        ("done / failed / lost", f"{done} / {failed} / {lost}"),
        ("result files (one per image task)", f"{result_files} of {images}"),
        ("work queue ready / dead letters after", f"{ready} / {dead}"),
        ("processed by soak-a / soak-b", f"{workers['soak-a']} / {workers['soak-b']}"),
        ("wall time", f"{elapsed:.1f} s ({args.tasks / elapsed:.0f} tasks/s)"),
        ("coordinator peak RSS", f"{sampler.peak['coordinator'] / 1e6:.0f} MB"),
        (
            "GET /workers latency under load (p50 / p99 / max)",
            f"{statistics.median(latencies_ms):.1f} / {percentile(latencies_ms, 0.99):.1f} / "
            f"{max(latencies_ms):.1f} ms (n={len(latencies_ms)})",
        ),
    ]
    verdict = "nothing lost" if lost == 0 and failed == 0 and result_files == images else "LOSS"
    text = [
        "# Soak: 10 000 tasks, two workers, real RabbitMQ",
        "",
        f"Written by `benchmarks/soak.py` on {time.strftime('%Y-%m-%d %H:%M')} "
        f"(Python {platform.python_version()}, 2 cores shared). Verdict: **{verdict}**.",
        "",
        "| what | measured |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in rows),
        "",
    ]
    args.out.write_text("\n".join(text))
    print("\n".join(text))
    if verdict != "nothing lost":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
