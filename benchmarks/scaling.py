"""How the coordinator's cost and a real worker's throughput grow with the cluster (issue 22).

Simulated lab PCs (tests/support/nodes.py, in a process of their own) register and report every
second, in a mix of states, beside a real coordinator on RabbitMQ; for each cluster size:

- coordinator CPU per report (reports and the workers' looks ride on the same requests), and
  its share of a core, with nothing else asking it anything;
- bytes per second of one open dashboard (GET /events), and GET /workers latency (p50/p99)
  while the reports go on;
- a real worker's thumbnails per second beside them, against the same job alone.

Then the fair share (three workers, two of them paused, then all three consuming) and a job's
start (200, 600 and 4 000 thumbnails on one, two and three workers). Writes benchmarks/SCALING.md
and the raw numbers to benchmarks/results/.

    .venv/bin/python -m benchmarks.scaling            # 10, 100, 300, 1000 nodes; ~10 min
    .venv/bin/python -m benchmarks.scaling --quick    # shorter windows, smaller jobs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks import workload  # noqa: E402
from benchmarks.harness import delete_queues, tree, unique_queue  # noqa: E402
from support.cluster import Cluster  # noqa: E402
from support.nodes import SimulatedNodes  # noqa: E402

# The simulated cluster: most PCs free, some paused by their users, a few draining or busy.
MIX = ("free",) * 6 + ("paused",) * 2 + ("busy", "draining")


def simulate(url: str, token: str, count: int, reports: Any, stop: Any) -> None:
    """Child process: `count` nodes reporting every second until `stop` is set."""
    names = [f"lab-pc-{i:04d}" for i in range(count)]
    statuses = [MIX[i % len(MIX)] for i in range(count)]
    nodes = SimulatedNodes(url, token, names, statuses, vary=True)

    async def main() -> None:
        counter = asyncio.create_task(_count(nodes, reports, stop))
        await nodes.run(stop)
        await counter

    asyncio.run(main())


async def _count(nodes: SimulatedNodes, reports: Any, stop: Any) -> None:
    while not stop.is_set():
        reports.value = nodes.reports
        await asyncio.sleep(0.1)
    reports.value = nodes.reports


class Simulator:
    """SimulatedNodes in a child process, with a live count of answered reports."""

    def __init__(self, cluster: Cluster, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.reports = ctx.Value("q", 0)
        self.stop = ctx.Event()
        args = (cluster.url, cluster.token, count, self.reports, self.stop)
        self.proc = ctx.Process(target=simulate, args=args, daemon=True)

    def __enter__(self) -> Simulator:
        self.proc.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.proc.join(timeout=20)
        if self.proc.is_alive():
            self.proc.kill()


def cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def new_cluster(root: Path, **env: str) -> Cluster:
    return Cluster(root, queue=unique_queue("sdscale"), **env)


def stop_cluster(cluster: Cluster) -> None:
    cluster.stop()
    assert cluster.queue is not None
    delete_queues(cluster.queue)


class Dashboard:
    """One open GET /events stream in a thread, counting the bytes it receives."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.bytes = 0
        self.events = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.cluster.client(60) as client, client.stream("GET", "/events") as answer:
            for chunk in answer.iter_raw():
                self.bytes += len(chunk)
                self.events += chunk.count(b"\nevent: ") + chunk.startswith(b"event: ")
                if self._stop.is_set():
                    return

    def __enter__(self) -> Dashboard:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def thumbnail_job(
    cluster: Cluster, photos: list[tuple[str, bytes]], copies: int, poll_s: float = 0.2
) -> tuple[float, float, str, dict[str, Any]]:
    """One upload of `photos` × `copies` thumbnails, waited for: when it was sent and when
    answered (wall clock), its job id, and the finished job's summary."""
    with cluster.client(300) as client:
        started = time.time()
        answer = client.post(
            "/upload",
            files=[("file", p) for p in photos],
            data={"ops": workload.THUMB_OPS, "copies": str(copies)},
        )
        answer.raise_for_status()
        answered = time.time()
        job_id = answer.json()["job_id"]
        deadline = time.monotonic() + 600
        while True:
            job = client.get(f"/jobs/{job_id}", params={"limit": 1}).json()
            if job["state"] in ("done", "failed"):
                return started, answered, job_id, job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish\n{cluster.log_tail()}")
            time.sleep(poll_s)


def thumbnails_per_s(cluster: Cluster, photos: list[tuple[str, bytes]], copies: int) -> float:
    """One upload of `photos` × `copies` thumbnails; tasks per second, submit to last result."""
    started, _, _, job = thumbnail_job(cluster, photos, copies)
    finished = job.get("finished_at") or time.time()
    return float(len(photos) * copies / max(1e-6, finished - started))


def tuned_to(cluster: Cluster, name: str) -> str:
    """The worker's highest prefetch in this run and the count of workers it shared with then,
    from its log's `tuning:` lines."""
    best = (0, "")
    for line in cluster.logs[name].read_text(errors="replace").splitlines():
        if "tuning:" in line and "prefetch=" in line:
            prefetch = int(line.rsplit("prefetch=", 1)[1].split()[0])
            live = line.split("consuming_workers=", 1)[1].split()[0]
            best = max(best, (prefetch, live))
    return f"prefetch {best[0]} (consuming workers {best[1] or '?'})"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the coordinator's cost as the cluster grows -------------------------------------------


def cluster_cost(
    work: Path,
    count: int,
    window_s: float,
    photos: list[tuple[str, bytes]],
    copies: int,
    alone: float,
) -> dict[str, Any]:
    cluster = new_cluster(work / f"nodes-{count}")
    try:
        cluster.start_coordinator()
        coordinator = tree(cluster.procs["coordinator"].pid)
        with Simulator(cluster, count) as sim:
            # A coordinator that cannot keep up answers fewer: the table says how many.
            cluster.wait_until(lambda: sim.reports.value >= count, 120, "a round of reports")
            time.sleep(1)
            # (a) reports alone: everything the coordinator does is for them.
            cpu0, reports0, t0 = cpu_s(coordinator), sim.reports.value, time.monotonic()
            time.sleep(window_s)
            cpu1, reports1, t1 = cpu_s(coordinator), sim.reports.value, time.monotonic()
            reports = max(1, reports1 - reports0)
            # (b) GET /workers asked over and over: its CPU beyond the reports' own.
            gets, g0, cpu_g0 = 0, time.monotonic(), cpu_s(coordinator)
            with cluster.client(30) as client:
                while time.monotonic() - g0 < window_s / 2:
                    client.get("/workers").raise_for_status()
                    gets += 1
            g1, cpu_g1 = time.monotonic(), cpu_s(coordinator)
            reports_cpu = (cpu1 - cpu0) / (t1 - t0) * (g1 - g0)
            get_ms = 1000 * max(0.0, cpu_g1 - cpu_g0 - reports_cpu) / max(1, gets)
            # (c) one dashboard open and GET /workers asked five times a second.
            latencies: list[float] = []
            with Dashboard(cluster) as dash, cluster.client(30) as client:
                time.sleep(1.5)
                bytes0, d0 = dash.bytes, time.monotonic()
                while time.monotonic() - d0 < window_s:
                    start = time.perf_counter()
                    client.get("/workers").raise_for_status()
                    latencies.append(time.perf_counter() - start)
                    time.sleep(0.2)
                dash_bps = (dash.bytes - bytes0) / (time.monotonic() - d0)
                listing = len(client.get("/workers").content)
                summary = len(client.get("/cluster").content)
            # (d) a real worker beside them.
            cluster.start_worker("real")
            rate = thumbnails_per_s(cluster, photos, copies)
            tuned = tuned_to(cluster, "real")
        return {
            "nodes": count,
            "reports_per_s": reports / (t1 - t0),
            "cpu_ms_per_report": 1000 * (cpu1 - cpu0) / reports,
            "cpu_cores": (cpu1 - cpu0) / (t1 - t0),
            "dashboard_bytes_per_s": dash_bps,
            "workers_p50_ms": 1000 * statistics.median(latencies),
            "workers_p99_ms": 1000 * percentile(latencies, 0.99),
            "workers_cpu_ms": get_ms,
            "workers_bytes": listing,
            "cluster_bytes": summary,
            "worker_tasks_per_s": rate,
            "worker_vs_alone": rate / alone if alone else None,
            "worker_tuned_to": tuned,
        }
    finally:
        stop_cluster(cluster)


def alone_rate(work: Path, photos: list[tuple[str, bytes]], copies: int) -> float:
    cluster = new_cluster(work / "alone")
    try:
        cluster.start_coordinator()
        cluster.start_worker("real")
        return thumbnails_per_s(cluster, photos, copies)
    finally:
        stop_cluster(cluster)


# -- fair share and a job's start with real workers -----------------------------------------


def fair_share(
    work: Path, photos: list[tuple[str, bytes]], copies: int, rounds: int
) -> dict[str, Any]:
    """One worker alone, beside two paused workers (CPU_LIMIT at its minimum on a machine that
    is never idle), and three consuming: tasks per second and each worker's part."""
    out: dict[str, Any] = {
        "alone": [],
        "two_paused": [],
        "three": [],
        "three_parts": [],
        "tasks": copies * len(photos),
    }
    for r in range(rounds):
        for case in ("alone", "two_paused", "three"):
            cluster = new_cluster(work / f"share-{case}-{r}")
            try:
                cluster.start_coordinator()
                if case != "alone":
                    limit = {"CPU_LIMIT": "0.1"} if case == "two_paused" else {}
                    for name in ("pc-a", "pc-b"):
                        cluster.start_worker(name, **limit)
                    if case == "two_paused":
                        _wait_paused(cluster, ("pc-a", "pc-b"))
                cluster.start_worker("real")
                time.sleep(2)
                out[case].append(thumbnails_per_s(cluster, photos, copies))
                if case == "three":
                    out["three_parts"].append(_parts(cluster))
            finally:
                stop_cluster(cluster)
    return out


def _wait_paused(cluster: Cluster, names: tuple[str, ...]) -> None:
    cluster.wait_until(
        lambda: all(cluster.worker(n).get("status") == "paused" for n in names),
        20,
        "the PCs to pause",
    )


def _parts(cluster: Cluster) -> dict[str, float]:
    with cluster.client() as client:
        job = client.get("/jobs", params={"limit": 1}).json()[0]
        tasks = client.get(f"/jobs/{job['job_id']}", params={"limit": 10_000}).json()["tasks"]
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t["worker"]] = counts.get(t["worker"], 0) + 1
    return {name: n / len(tasks) for name, n in sorted(counts.items())}


WARM_UP_COPIES = 10


def job_start(
    work: Path, photos: list[tuple[str, bytes]], sizes: tuple[int, ...], rounds: int
) -> dict[str, Any]:
    """Jobs of each size on one, two and three workers (the same two cores): tasks/s. Each
    cluster first runs a small job, so no size pays for the pool processes' first images, and
    the sizes take turns at going first."""
    out: dict[str, Any] = {}
    for r in range(rounds):
        for workers in (1, 2, 3):
            cluster = new_cluster(work / f"start-{workers}-{r}")
            try:
                cluster.start_coordinator()
                for i in range(workers):
                    cluster.start_worker(f"w{i}")
                time.sleep(2)
                thumbnails_per_s(cluster, photos, WARM_UP_COPIES)
                for size in sizes[r % len(sizes) :] + sizes[: r % len(sizes)]:
                    rate = thumbnails_per_s(cluster, photos, size // len(photos))
                    out.setdefault(f"{size}x{workers}", []).append(rate)
            finally:
                stop_cluster(cluster)
    return out


# -- report ---------------------------------------------------------------------------------


def spread(values: list[float], digits: int = 1) -> str:
    if not values:
        return "–"
    m, lo, hi = statistics.median(values), min(values), max(values)
    return f"{m:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f}, n={len(values)})"


def machine(run: dict[str, Any]) -> str:
    """How loaded the machine was as each run began (the load average)."""
    loads = run.get("loads", [run.get("load")])
    if None in loads:
        return "the load at the start of some runs was not recorded"
    busy = "shared with other work" if max(loads) > run["cores"] else "otherwise quiet"
    return f"load average {' / '.join(f'{x:.1f}' for x in loads)} at the start ({busy})"


def render(run: dict[str, Any]) -> str:
    lines = [
        "# Scaling with the cluster's size (issue 22)",
        "",
        f"Run {', '.join(run.get('runs', [run['started']]))} on {run['cores']} cores, "
        f"`benchmarks/scaling.py {' '.join(run['args'])}`; {machine(run)}: compare figures "
        "within one table, not across runs.",
        "",
    ]
    if run.get("cost"):
        lines += [
            "## The coordinator as the cluster grows",
            "",
            f"Simulated lab PCs reporting every second ({'/'.join(sorted(set(MIX)))} in the mix "
            f"{', '.join(MIX)}); windows of {run['window_s']:.0f} s. CPU is the coordinator's, "
            "with only the reports asking anything (a worker's look at the cluster is the answer "
            "to its report plus the broker's counters). The real worker runs "
            f"{run['copies'] * 2} thumbnails beside them; 'alone' is the same job with no other "
            "node, in the same run.",
            "",
            "| nodes | reports/s | coordinator CPU per report | coordinator cores "
            "| dashboard bytes/s | GET /workers p50 / p99 (its CPU) | /workers size "
            "| /cluster size "
            "| real worker tasks/s (vs alone) | real worker tuned to |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in run["cost"]:
            lines.append(
                f"| {row['nodes']} | {row['reports_per_s']:.0f} "
                f"| {row['cpu_ms_per_report']:.2f} ms | {row['cpu_cores']:.3f} "
                f"| {row['dashboard_bytes_per_s'] / 1000:.1f} kB/s "
                f"| {row['workers_p50_ms']:.1f} / {row['workers_p99_ms']:.1f} ms "
                f"({row.get('workers_cpu_ms', float('nan')):.1f} ms) "
                f"| {row['workers_bytes'] / 1000:.1f} kB | {row['cluster_bytes']} B "
                f"| {row['worker_tasks_per_s']:.0f} ({row['worker_vs_alone']:.2f}) "
                f"| {row.get('worker_tuned_to', '–')} |"
            )
        lines += [
            "",
            f"Alone: {run['alone']:.0f} tasks/s. 'Tuned to' is the worker's highest prefetch and "
            "the count of consuming workers it shared the queue with then (its log): the "
            "simulated PCs take nothing from its share at any size, so what its throughput loses "
            "beside them is "
            "the CPU the simulator and the coordinator take from the same two cores. GET /workers' "
            "CPU is the coordinator's CPU while asking it in a loop less the reports' own rate; "
            "it is the difference of two noisy figures (0 means within the noise).",
            "",
        ]
    if "share" in run:
        s = run["share"]
        alone = statistics.median(s["alone"])
        lines += [
            "## Fair share: three workers, two of them paused",
            "",
            "Three `sd-worker --async` on this machine; 'paused' ones run with CPU_LIMIT=0.1 on "
            "a machine that is never idle, so they stay paused and report so. Thumbnails/s of "
            "the whole job (all on the same two cores):",
            "",
            f"Jobs of {s.get('tasks', '?')} thumbnails. Paired in each round (the same "
            "minutes of the machine), beside two paused workers against alone: "
            + ", ".join(f"{p / a:.2f}" for p, a in zip(s["two_paused"], s["alone"], strict=False))
            + ".",
            "",
            "| case | tasks/s | vs alone |",
            "|---|---|---|",
            f"| one worker alone | {spread(s['alone'])} | 1.00 |",
            f"| beside two paused workers | {spread(s['two_paused'])} | "
            f"{statistics.median(s['two_paused']) / alone:.2f} |",
            f"| three consuming | {spread(s['three'])} | "
            f"{statistics.median(s['three']) / alone:.2f} |",
            "",
            "Three workers run six pool processes and three worker loops on the two cores "
            "where one runs two and one: on a quiet machine that costs them, on a loaded one "
            "it wins them a larger share of it, so compare the first two rows. Each worker's "
            "part of the job with all three consuming: "
            + "; ".join(", ".join(f"{k} {v:.2f}" for k, v in p.items()) for p in s["three_parts"])
            + ".",
            "",
        ]
    if "start" in run:
        st = run["start"]
        lines += [
            "## A job's start on one, two and three workers",
            "",
            "The same thumbnail jobs on 1, 2 and 3 workers sharing this machine's cores "
            "(so per core the same work): tasks/s, median (min–max, rounds). As above, more "
            "workers are more processes on the same cores. A job's start is not starved when "
            "its short job runs as fast as its long one on the same workers. Each cluster first "
            f"runs a job of {WARM_UP_COPIES} copies of the photos (its pool processes' first "
            "images), and the sizes take turns at going first.",
            "",
            "| job | 1 worker | 2 workers | 3 workers |",
            "|---|---|---|---|",
        ]
        sizes = run["start_sizes"]
        for size in sizes:
            cells = [spread(st.get(f"{size}x{w}", [])) for w in (1, 2, 3)]
            lines.append(f"| {size} thumbnails | " + " | ".join(cells) + " |")
        long = max(sizes)
        for short in sorted(set(sizes) - {long}):
            paired = [
                [
                    a / b
                    for a, b in zip(
                        st.get(f"{short}x{w}", []), st.get(f"{long}x{w}", []), strict=False
                    )
                ]
                for w in (1, 2, 3)
            ]
            lines.append(
                f"| {short} ÷ {long}, paired by round | "
                + " | ".join(spread(p, digits=2) for p in paired)
                + " |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short windows and small jobs")
    parser.add_argument("--nodes", default="10,100,300,1000", help="cluster sizes to measure")
    parser.add_argument("--only", default="cost,share,start", help="parts to run")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of the real-worker runs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "SCALING.md")
    parser.add_argument(
        "--render",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="write the report from saved runs (later runs' parts win), measuring nothing",
    )
    args = parser.parse_args()
    if args.render:
        merged: dict[str, Any] = {}
        for path in args.render:
            saved = json.loads(path.read_text())
            # Each table's settings come from the run that measured it.
            if not saved.get("cost"):
                for key in ("cost", "alone", "window_s", "copies"):
                    saved.pop(key, None)
            if not saved.get("start"):
                saved.pop("start_sizes", None)
            merged.update({k: v for k, v in saved.items() if v or k not in merged})
            merged.setdefault("runs", []).append(saved["started"])
            merged.setdefault("loads", []).append(saved.get("load"))
        args.out.write_text(render(merged) + "\n")
        print(f"wrote {args.out}")
        return
    window_s = 6.0 if args.quick else 15.0
    copies = 150 if args.quick else 300
    rounds = args.rounds or (1 if args.quick else 2)
    sizes = (200, 600, 2000) if args.quick else (200, 600, 4000)
    photos = [(f"p{i}.jpg", workload.make_photo(640, 480, seed=i)) for i in range(2)]
    parts = set(args.only.split(","))
    run: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": psutil.cpu_count(),
        "load": os.getloadavg()[0],
        "args": sys.argv[1:],
        "window_s": window_s,
        "copies": copies,
        "cost": [],
        "start_sizes": sizes,
    }
    with tempfile.TemporaryDirectory(prefix="sdscale-") as tmp:
        work = Path(tmp)
        if "cost" in parts:
            run["alone"] = alone_rate(work, photos, copies)
            for count in (int(n) for n in args.nodes.split(",")):
                print(f"measuring {count} nodes", flush=True)
                run["cost"].append(
                    cluster_cost(work, count, window_s, photos, copies, run["alone"])
                )
                print(json.dumps(run["cost"][-1]), flush=True)
        if "share" in parts:
            print("measuring the fair share", flush=True)
            run["share"] = fair_share(work, photos, copies, rounds)
            print(json.dumps(run["share"]), flush=True)
        if "start" in parts:
            print("measuring a job's start", flush=True)
            # Enough distinct photos that the largest job stays within an upload's copies.
            many = [(f"s{i}.jpg", workload.make_photo(640, 480, seed=i)) for i in range(4)]
            run["start"] = job_start(work, many, sizes, rounds)
            print(json.dumps(run["start"]), flush=True)
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / f"scaling-{int(time.time())}.json").write_text(json.dumps(run, indent=1))
    args.out.write_text(render(run) + "\n")  # only the parts this run measured
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
