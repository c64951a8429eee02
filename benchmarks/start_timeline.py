"""Where a short job's time goes (issue 18: "a job of 200 tasks is as efficient as a job of
4 000"): a timeline of thumbnail jobs on one or more workers, from the upload's first byte.

Each round uploads four photos × copies to a fresh-enough cluster (a real coordinator on
RabbitMQ, real workers sharing its DATA_DIR) and reads, from the job and its result files'
modification times: when the upload was answered, when the first and the last result were
written, when the job was done, and each worker's share and first and last result. Idle time
at a job's end shows as workers whose last result comes well before the job's. Prints a table;
nothing is written.

    .venv/bin/python -m benchmarks.start_timeline                    # 200 tasks, one worker
    .venv/bin/python -m benchmarks.start_timeline --workers 3 --rounds 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks import workload  # noqa: E402
from benchmarks.scaling import (  # noqa: E402
    new_cluster,
    stop_cluster,
    thumbnail_job,
    thumbnails_per_s,
)

PHOTOS = 4


def one_job(cluster: Any, photos: list[tuple[str, bytes]], copies: int) -> dict[str, Any]:
    """Run one job; its timeline in ms from the upload's start."""
    results = cluster.root / "coordinator" / "results"
    began, answered, job_id, job = thumbnail_job(cluster, photos, copies, poll_s=0.05)
    with cluster.client(300) as client:
        tasks = client.get(f"/jobs/{job_id}", params={"limit": 10_000}).json()["tasks"]
    by_worker: dict[str, list[float]] = {}
    for task in tasks:
        written = os.stat(results / task["result"]).st_mtime
        by_worker.setdefault(task["worker"], []).append((written - began) * 1e3)
    every = sorted(t for times in by_worker.values() for t in times)
    return {
        "answered": (answered - began) * 1e3,
        "first": every[0],
        "last": every[-1],
        "done": (job["finished_at"] - began) * 1e3,
        "steady": (len(every) - 1) / max(1e-6, every[-1] - every[0]) * 1e3,
        "workers": {name: (len(t), min(t), max(t)) for name, t in sorted(by_worker.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=200, help="tasks a job (a multiple of 4)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    photos = [(f"s{i}.jpg", workload.make_photo(640, 480, seed=i)) for i in range(PHOTOS)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="sdstart-") as tmp:
        cluster = new_cluster(Path(tmp))
        try:
            cluster.start_coordinator()
            for i in range(args.workers):
                cluster.start_worker(f"w{i}")
            time.sleep(2)
            thumbnails_per_s(cluster, photos, 10)  # the pool processes' first images
            for _ in range(args.rounds):
                rows.append(one_job(cluster, photos, args.tasks // PHOTOS))
                time.sleep(0.5)
        finally:
            stop_cluster(cluster)
    print(f"{args.tasks} thumbnails on {args.workers} worker(s), ms from the upload's start\n")
    print(
        "| round | answered | first result | last result | done | steady tasks/s "
        "| workers: tasks, first–last |"
    )
    print("|---|---|---|---|---|---|---|")
    for n, r in enumerate(rows, 1):
        shares = "; ".join(f"{w} {c}, {a:.0f}–{b:.0f}" for w, (c, a, b) in r["workers"].items())
        print(
            f"| {n} | {r['answered']:.1f} | {r['first']:.1f} | {r['last']:.0f} | {r['done']:.0f} "
            f"| {r['steady']:.0f} | {shares} |"
        )
    med = {k: statistics.median(r[k] for r in rows) for k in ("answered", "first", "last", "done")}
    print(
        f"| median | {med['answered']:.1f} | {med['first']:.1f} | {med['last']:.0f} "
        f"| {med['done']:.0f} | | |"
    )


if __name__ == "__main__":
    main()
