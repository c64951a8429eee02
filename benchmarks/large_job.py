"""Jobs of many files: coordinator memory, summary and page latency, snapshot size, the zip,
and disk growth per 1 000 tasks. Writes benchmarks/LARGE_JOBS.md.

    .venv/bin/python -m benchmarks.large_job                    # 10 000 and 100 000 tasks
    .venv/bin/python -m benchmarks.large_job --sizes 10000      # one size

Each size runs on a fresh sd-coordinator (RABBIT_HOST set, a unique queue) with one
sd-worker --async, both as real processes. The job is one growing job of N distinct 8×8 PNGs,
sent through the Python client in batches of 100 files, 4 batches at a time; ops `grayscale`
(the smallest real image task, so the coordinator's own costs dominate). The coordinator's main
process alone is measured (RSS sampled every 100 ms): the worker and its pool are separate
processes.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.harness import Ours, RssSampler  # noqa: E402
from sd_client import Client  # noqa: E402

BATCH = 100
PARALLEL = 4
MB = 1024 * 1024


def tiny_png(i: int) -> bytes:
    """A distinct 8×8 PNG for every i below 2^24."""
    out = io.BytesIO()
    colour = (i & 255, (i >> 8) & 255, (i >> 16) & 255)
    Image.new("RGB", (8, 8), colour).save(out, "PNG")
    return out.getvalue()


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(sum of file sizes, blocks on disk) of the files under `folder`."""
    size = blocks = 0
    for path in folder.rglob("*"):
        if path.is_file():
            st = path.stat()
            size += st.st_size
            blocks += st.st_blocks * 512
    return size, blocks


def db_bytes(data_dir: Path, suffix: str = "") -> int:
    path = data_dir / f"sd.sqlite3{suffix}"
    return path.stat().st_size if path.exists() else 0


async def send_all(url: str, token: str, count: int) -> str:
    async with Client(url, token) as sd:
        job = await sd.create_job("grayscale", 1, f"bench {count}")
        slots = asyncio.Semaphore(PARALLEL)

        async def send(start: int) -> None:
            async with slots:
                files = [
                    (f"d{i // 1000:03d}/f{i:06d}.png", tiny_png(i))
                    for i in range(start, min(start + BATCH, count))
                ]
                await sd.add_files(job.job_id, files)

        async with asyncio.TaskGroup() as group:
            for start in range(0, count, BATCH):
                await slots.acquire()
                slots.release()
                group.create_task(send(start))
        await sd.close_job(job.job_id)
        return job.job_id


def latency_ms(http: httpx.Client, path: str, params: dict[str, Any], times: int = 15) -> float:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        response = http.get(path, params=params)
        spent.append(time.perf_counter() - started)
        response.raise_for_status()
    return statistics.median(spent) * 1000


def snapshot_bytes(http: httpx.Client) -> int:
    with http.stream("GET", "/events") as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                return len(line)
    raise RuntimeError("no snapshot")


def zip_figures(http: httpx.Client, job_id: str, coordinator: psutil.Process) -> dict[str, float]:
    peak = 0
    first = None
    total = 0
    started = time.perf_counter()
    with http.stream("GET", f"/jobs/{job_id}/zip") as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            if first is None:
                first = time.perf_counter() - started
            total += len(chunk)
            peak = max(peak, coordinator.memory_info().rss)
    return {
        "first_byte_ms": (first or 0) * 1000,
        "seconds": time.perf_counter() - started,
        "mb": total / MB,
        "peak_rss_mb": peak / MB,
    }


def run_size(count: int, work: Path) -> dict[str, Any]:
    ours = Ours(work / f"n{count}")
    ours.start()
    try:
        coordinator = psutil.Process(ours.cluster.procs["coordinator"].pid)
        data_dir = ours.root / "coordinator"
        idle_rss = coordinator.memory_info().rss
        db0, (res0, _), (blob0, _) = (
            db_bytes(data_dir),
            folder_bytes(data_dir / "results"),
            folder_bytes(data_dir / "blobs"),
        )
        small_snapshot = snapshot_bytes(ours.http)
        samples: list[tuple[float, int]] = []
        sampler = RssSampler({"coordinator": lambda: [coordinator]}, period_s=0.1)
        sampler.extra.append(
            lambda: samples.append((time.monotonic(), coordinator.memory_info().rss))
        )
        started = time.monotonic()
        with sampler:
            job_id = asyncio.run(send_all(ours.cluster.url, ours.cluster.token, count))
            sent_s = time.monotonic() - started
            deadline = time.monotonic() + 3600
            while (job := ours.http.get(f"/jobs/{job_id}", params={"limit": 0}).json())[
                "state"
            ] not in ("done", "failed"):
                if time.monotonic() > deadline:
                    raise TimeoutError(job)
                time.sleep(1)
            done_s = time.monotonic() - started
        figures = {
            "tasks": count,
            "state": job["state"],
            "sent_s": sent_s,
            "done_s": done_s,
            "tasks_per_s": count / done_s,
            "idle_rss_mb": idle_rss / MB,
            "peak_rss_mb": sampler.peak["coordinator"] / MB,
            "end_rss_mb": coordinator.memory_info().rss / MB,
            "summary_ms": latency_ms(ours.http, f"/jobs/{job_id}", {"limit": 0}),
            "first_page_ms": latency_ms(ours.http, f"/jobs/{job_id}", {"limit": 1000}, 5),
            "deep_page_ms": latency_ms(
                ours.http, f"/jobs/{job_id}/tasks", {"cursor": count - 1000, "limit": 1000}, 5
            ),
            "failed_filter_ms": latency_ms(
                ours.http, f"/jobs/{job_id}/tasks", {"state": "failed", "limit": 100}, 5
            ),
            "jobs_list_ms": latency_ms(ours.http, "/jobs", {"limit": 50}),
            "snapshot_small_b": small_snapshot,
            "snapshot_b": snapshot_bytes(ours.http),
        }
        res1, res_blocks = folder_bytes(data_dir / "results")
        blob1, blob_blocks = folder_bytes(data_dir / "blobs")
        figures.update(
            {
                "db_per_1000_kb": (db_bytes(data_dir) - db0) / count,  # bytes/task = KB/1000
                "wal_kb": db_bytes(data_dir, "-wal") / 1024,
                "results_per_1000_kb": (res1 - res0) / count,
                "results_disk_per_1000_kb": res_blocks / count,
                "blobs_per_1000_kb": (blob1 - blob0) / count,
                "blobs_disk_per_1000_kb": blob_blocks / count,
            }
        )
        figures["zip"] = zip_figures(ours.http, job_id, coordinator)
        step = max(1, len(samples) // 40)
        figures["rss_curve_mb"] = [
            (round(t - started, 1), round(r / MB, 1)) for t, r in samples[::step]
        ]
        return figures
    finally:
        ours.stop()


def report(runs: list[dict[str, Any]], load: str) -> str:
    lines = [
        "# Jobs of many files: memory, latency, size",
        "",
        "Written by `benchmarks/large_job.py` (see its docstring for the set-up). One growing job "
        "of N distinct 8×8 PNGs, `grayscale`, sd-coordinator on RabbitMQ with one sd-worker "
        "--async on the same machine; only the coordinator's main process is measured.",
        "",
        f"Machine: {os.cpu_count()} cores; load average at the start {load}. **The machine was "
        "shared with other engineers' test runs while this ran**: rates and latencies are noisy, "
        "sizes and memory are not.",
        "",
        "| tasks | peak RSS | idle RSS | end RSS | tasks/s end to end | GET /jobs/{id} summary | "
        "first page (1 000 tasks) | page at the end | failed filter | GET /jobs | snapshot "
        "(small job → this job) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['tasks']:,} | {r['peak_rss_mb']:.0f} MB | {r['idle_rss_mb']:.0f} MB | "
            f"{r['end_rss_mb']:.0f} MB | {r['tasks_per_s']:.0f} | {r['summary_ms']:.1f} ms | "
            f"{r['first_page_ms']:.0f} ms | {r['deep_page_ms']:.0f} ms | "
            f"{r['failed_filter_ms']:.0f} ms | {r['jobs_list_ms']:.1f} ms | "
            f"{r['snapshot_small_b']:,} → {r['snapshot_b']:,} B |"
        )
    lines += [
        "",
        "Disk growth per 1 000 tasks (8×8 PNG inputs; file sizes, then blocks used):",
        "",
        "| tasks | SQLite database | (its WAL file at the end) | results "
        "| results on disk | inputs | inputs on disk |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['tasks']:,} | {r['db_per_1000_kb']:.0f} KB | {r['wal_kb']:.0f} KB total | "
            f"{r['results_per_1000_kb']:.0f} KB "
            f"| {r['results_disk_per_1000_kb']:.0f} KB | {r['blobs_per_1000_kb']:.0f} KB | "
            f"{r['blobs_disk_per_1000_kb']:.0f} KB |"
        )
    lines += [
        "",
        "The zip of every result, streamed (`GET /jobs/{id}/zip`):",
        "",
        "| tasks | first byte | whole zip | size | coordinator peak RSS while zipping |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        z = r["zip"]
        lines.append(
            f"| {r['tasks']:,} | {z['first_byte_ms']:.0f} ms | {z['seconds']:.1f} s | "
            f"{z['mb']:.1f} MB | {z['peak_rss_mb']:.0f} MB |"
        )
    lines += ["", "Coordinator RSS over the run (seconds, MB), sampled:", ""]
    for r in runs:
        curve = " ".join(f"{t}s:{m}" for t, m in r["rss_curve_mb"])
        lines.append(f"- {r['tasks']:,} tasks: {curve}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "LARGE_JOBS.md"))
    args = parser.parse_args()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    runs = []
    with tempfile.TemporaryDirectory(prefix="sd-large-") as work:
        for size in (int(s) for s in args.sizes.split(",")):
            print(f"running {size} tasks…", file=sys.stderr)
            runs.append(run_size(size, Path(work)))
            print(
                json.dumps({k: v for k, v in runs[-1].items() if k != "rss_curve_mb"}),
                file=sys.stderr,
            )
    Path(args.out).write_text(report(runs, load))
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / f"large-{int(time.time())}.json").write_text(json.dumps(runs, indent=1))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
