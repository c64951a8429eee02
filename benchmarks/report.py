"""Turning the runs into benchmarks/REPORT.md: ratios paired within each round, medians, spread."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.figures import OURS_HTTP, PILLOW_ALONE, Run

KB = 1024


@dataclass
class Row:
    """One line of the summary table."""

    figure: str
    ours: str
    baseline: str
    ratio: str
    target: str
    passed: bool | None
    spread: str


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """min–max over the rounds, and how many rounds."""
    if not values:
        return "–"
    return f"{fmt.format(min(values))}–{fmt.format(max(values))} (n={len(values)})"


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Results:
    """Rates and CPU by figure, system and round."""

    def __init__(self, runs: list[Run]) -> None:
        self.rates: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
        self.runs = runs
        for run in runs:
            self.rates[(run.figure, run.system)][run.round] = run.rate

    def values(self, figure: str, system: str) -> list[float]:
        return list(self.rates[(figure, system)].values())

    def ratios(self, figure: str, ours: str, baseline: str) -> list[float]:
        """ours / baseline, paired round by round (both measured back to back)."""
        a, b = self.rates[(figure, ours)], self.rates[(figure, baseline)]
        return [a[r] / b[r] for r in sorted(a) if r in b and b[r] > 0]

    def cpu_ms_per_task(self, figure: str, system: str) -> dict[str, float]:
        """Median CPU milliseconds per task, by component."""
        per: dict[str, list[float]] = defaultdict(list)
        for run in self.runs:
            if (run.figure, run.system) == (figure, system):
                for component, seconds in run.cpu_s.items():
                    per[component].append(seconds / run.tasks * 1000)
        return {c: median(v) for c, v in per.items()}


RELEVANT = {
    "bare pool": ("bare", "client"),
    PILLOW_ALONE: ("pillow alone", "client"),
    "ours": ("coordinator", "worker", "worker main", "rabbitmq", "client"),
    OURS_HTTP: ("coordinator", "worker", "worker main", "rabbitmq", "client"),
    "broker alone": ("rabbitmq", "client"),
}


def _components(system: str) -> tuple[str, ...]:
    return RELEVANT.get(system, ("celery", "rabbitmq", "client"))


def rate_row(
    res: Results,
    figure: str,
    label: str,
    ours: str,
    baseline: str,
    target: float | None,
    unit: str = "tasks/s",
    untargeted: str = "peer",
) -> Row:
    ratios = res.ratios(figure, ours, baseline)
    mine, theirs = res.values(figure, ours), res.values(figure, baseline)
    r = median(ratios)
    return Row(
        label,
        f"{median(mine):.1f} {unit}",
        f"{median(theirs):.1f} {unit} ({baseline})",
        f"{r:.3f}",
        f"≥ {target:g}" if target is not None else untargeted,
        (r >= target) if target is not None else None,
        f"ratio {spread(ratios, '{:.3f}')}; ours {spread(mine, '{:.1f}')}",
    )


def cpu_row(
    res: Results,
    figure: str,
    label: str,
    target: float | None,
    baseline: str = "bare pool",
    system: str = "ours",
) -> Row:
    """Efficiency from CPU time: the bare pool's CPU per task over ours (all our processes and
    the broker). Independent of what else the shared machine runs."""
    bare = res.cpu_ms_per_task(figure, baseline)
    ours = res.cpu_ms_per_task(figure, system)
    bare_ms = bare.get(RELEVANT[baseline][0], 0)
    ours_ms = sum(ours.get(c, 0) for c in ("coordinator", "worker", "rabbitmq"))
    r = bare_ms / ours_ms if ours_ms else float("nan")
    return Row(
        label,
        f"{ours_ms:.2f} ms CPU/task",
        f"{bare_ms:.2f} ms CPU/task ({baseline})",
        f"{r:.3f}",
        f"≥ {target:g}" if target else "–",
        (r >= target) if target else None,
        "medians of the rounds",
    )


# Issue #18's targets against the Pillow work alone: (figure, system, label, target).
AGAINST_PILLOW = (
    ("images", "ours", "(a) 1080p → grayscale PNG, one worker", 0.96),
    ("thumbs", "ours", "(b) thumbnails, one worker", 0.93),
    ("thumbs", OURS_HTTP, "(b) the same thumbnails, results over HTTP (SHARED_STORAGE=off)", 0.90),
)


def pillow_alone_rows(res: Results) -> list[Row]:
    """The headline: ours against the Pillow work alone (decode → operation → PNG on bytes in
    memory, same zlib level and PILLOW_BLOCKS_MAX, same cores, same run), by wall time and CPU."""
    rows = []
    for figure, system, label, target in AGAINST_PILLOW:
        if not (res.values(figure, system) and res.values(figure, PILLOW_ALONE)):
            continue
        rows.append(
            rate_row(
                res, figure, f"{label}, vs the Pillow work alone", system, PILLOW_ALONE, target
            )
        )
        rows.append(
            cpu_row(
                res,
                figure,
                f"{label}, CPU cost (Pillow alone ÷ ours + broker)",
                None,
                baseline=PILLOW_ALONE,
                system=system,
            )
        )
    return rows


def against_pillow_table(res: Results) -> list[str]:
    """Every system of every image figure against the Pillow work alone, paired by round."""
    figures = sorted({f for f, s in res.rates if s == PILLOW_ALONE})
    if not figures:
        return []
    out = [
        "",
        "## Every image figure against the Pillow work alone",
        "",
        "The Pillow work alone: `ProcessPoolExecutor(cpu_count)` doing only decode → "
        "operation → PNG on bytes in memory (`workload.gray_alone`, `thumb_alone`; "
        "`map(chunksize=1)`), at the system's zlib level (PNG_COMPRESS_LEVEL's default) "
        "and PILLOW_BLOCKS_MAX (the system's defaults), measured in every "
        "round of this run beside the others. Its pixels are checked identical above.",
        "",
        "| figure | system | tasks/s | ratio to the Pillow work alone | spread of the ratio |",
        "|---|---|---|---|---|",
    ]
    for figure in figures:
        base = res.values(figure, PILLOW_ALONE)
        out.append(f"| {figure} | {PILLOW_ALONE} | {median(base):.1f} | 1 | – |")
        for f, system in sorted(res.rates):
            if f != figure or system == PILLOW_ALONE:
                continue
            ratios = res.ratios(figure, system, PILLOW_ALONE)
            out.append(
                f"| {figure} | {system} | {median(res.values(figure, system)):.1f} | "
                f"{median(ratios):.3f} | {spread(ratios, '{:.3f}')} |"
            )
    return out


def upload_row(facts: dict[str, Any]) -> list[Row]:
    """How long POST /upload of (a)'s job took: part of ours' time, not of the bare pool's."""
    ms = [v * 1000 for v in facts.get("upload_s", [])]
    if not ms:
        return []
    return [
        Row(
            "(a) job start: POST /upload answered (full decode check, stored once, every "
            "message confirmed)",
            f"{median(ms):.0f} ms",
            "–",
            "–",
            "–",
            None,
            f"{spread(ms, '{:.0f}')} ms",
        )
    ]


def render(
    runs: list[Run],
    facts: dict[str, Any],
    machine: dict[str, str],
    history: str,
    flags: str,
    seconds: float,
) -> str:
    res = Results(runs)
    rows: list[Row] = [
        *pillow_alone_rows(res),
        rate_row(
            res, "images", "(a) 1080p → grayscale PNG, ours vs bare pool", "ours", "bare pool", 0.98
        ),
        cpu_row(res, "images", "(a) same, CPU cost (bare CPU ÷ ours + broker CPU)", None),
        *upload_row(facts),
        rate_row(
            res,
            "images",
            "(a/g) ours vs Celery's natural task (default PNG save)",
            "ours",
            "celery natural",
            1.5,
        ),
        rate_row(
            res,
            "images",
            "(g) Celery, image bytes in the message, vs bare pool",
            "celery bytes",
            "bare pool",
            None,
        ),
        rate_row(
            res, "images", "(g) Celery, file paths, vs bare pool", "celery path", "bare pool", None
        ),
        rate_row(
            res, "thumbs", "(b) 2 000 thumbnails, ours vs bare pool", "ours", "bare pool", 0.90
        ),
        cpu_row(res, "thumbs", "(b) same, CPU cost (bare CPU ÷ ours + broker CPU)", None),
        rate_row(
            res,
            "thumbs",
            "(g) thumbnails, Celery bytes vs bare pool",
            "celery bytes",
            "bare pool",
            None,
        ),
        rate_row(
            res,
            "thumbs",
            "(g) thumbnails, Celery paths vs bare pool",
            "celery path",
            "bare pool",
            None,
        ),
        rate_row(
            res, "thumbs", "(b/g) thumbnails, ours vs Celery paths", "ours", "celery path", None
        ),
    ]
    noop = res.values("noops", "ours")
    rows.append(
        Row(
            "(c) no-op tasks end to end, results recorded",
            f"{median(noop):.0f} tasks/s",
            "1 500 tasks/s",
            f"{median(noop) / 1500:.3f}",
            "≥ 1 500/s",
            median(noop) >= 1500,
            f"ours {spread(noop, '{:.0f}')}",
        )
    )
    rows.append(rate_row(res, "noops", "(c/g) no-ops, ours vs Celery", "ours", "celery", None))
    rows.append(
        rate_row(
            res,
            "noops",
            "(c) no-ops, ours vs the broker alone (aio-pika, no work, no results)",
            "ours",
            "broker alone",
            None,
        )
    )
    cpu_noop = sum(
        res.cpu_ms_per_task("noops", "ours").get(c, 0)
        for c in ("coordinator", "worker", "rabbitmq")
    )
    if cpu_noop:
        capacity = 2000 / cpu_noop
        rows.append(
            Row(
                "(c) no-ops, capacity of 2 idle cores from CPU cost",
                f"{capacity:.0f} tasks/s",
                f"{cpu_noop:.3f} ms CPU/task",
                "–",
                "≥ 1 500/s",
                capacity >= 1500,
                "2 000 ms ÷ CPU ms per task",
            )
        )
    lat = facts.get("latency_s", {})
    for name, values in lat.items():
        ms = [v * 1000 for v in values]
        is_ours = name.startswith("ours")
        rows.append(
            Row(
                f"(d) latency, {name}, idle cluster",
                f"p50 {percentile(ms, 50):.1f} / p95 {percentile(ms, 95):.1f} / "
                f"p99 {percentile(ms, 99):.1f} ms",
                "–",
                "–",
                "p50 < 20 ms" if is_ours else "peer",
                (percentile(ms, 50) < 20) if is_ours else None,
                f"n={len(ms)}",
            )
        )
    mem = facts.get("memory", [])
    if len(mem) >= 2:
        low, high = mem[0], mem[-1]
        for part in ("coordinator_mb", "worker_mb"):
            growth = high[part] / low[part]
            rows.append(
                Row(
                    f"(e) peak RSS, {part.split('_')[0]}"
                    + (" (+ pool processes)" if "worker" in part else ""),
                    f"{high[part]:.0f} MB with {high['depth']} queued",
                    f"{low[part]:.0f} MB with {low['depth']} queued",
                    f"{growth:.3f}",
                    "bounded (≤ 1.2× for 10× depth)",
                    growth <= 1.2,
                    f"queue depth seen: {low['queued']} / {high['queued']}",
                )
            )
        if "worker_pss_mb" in high:
            growth = high["worker_pss_mb"] / low["worker_pss_mb"]
            rows.append(
                Row(
                    "(e) peak PSS, worker (+ pool processes; pages they share counted once)",
                    f"{high['worker_pss_mb']:.0f} MB with {high['depth']} queued",
                    f"{low['worker_pss_mb']:.0f} MB with {low['depth']} queued",
                    f"{growth:.3f}",
                    "bounded (≤ 1.2× for 10× depth)",
                    growth <= 1.2,
                    f"queue depth seen: {low['queued']} / {high['queued']}",
                )
            )
    sizes = facts.get("message_body", {})
    bb = facts.get("broker_bytes", {})
    if sizes:
        rows.append(
            Row(
                "(f) task message body (image / sleep task)",
                f"{sizes['image']} / {sizes['sleep']} B",
                "–",
                "–",
                "< 1 KB",
                max(sizes.values()) < KB,
                "JSON TaskMessage",
            )
        )
    if "ours" in bb:
        theirs = bb.get("celery", {}).get("per_task")
        rows.append(
            Row(
                "(f) bytes through the broker per no-op task (all directions)",
                f"{bb['ours']['per_task']:.0f} B",
                f"{theirs:.0f} B (Celery, rpc results)" if theirs else "–",
                f"{bb['ours']['per_task'] / theirs:.3f}" if theirs else "–",
                "< 1 KB",
                bb["ours"]["per_task"] < KB,
                f"{bb['ours']['tasks']} tasks, rabbitmqctl octets",
            )
        )

    out = ["# Benchmarks: throughput at the physical limit (issue #5)", ""]
    out.append(
        f"Written by `benchmarks/run.py{flags}` in "
        f"{seconds / 60:.1f} min. Every figure was measured in this run, the systems "
        "interleaved round by round (the order rotates each round); ratios are paired "
        "within a round, then the median is reported with the min–max over rounds."
    )
    out += ["", "## Machine", ""]
    out += [f"- {k}: {v}" for k, v in machine.items()]
    out += [
        "",
        "## Summary",
        "",
        "| figure | ours | baseline | ratio | target | pass | spread |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        mark = "–" if row.passed is None else ("✅ pass" if row.passed else "❌ miss")
        out.append(
            f"| {row.figure} | {row.ours} | {row.baseline} | {row.ratio} | "
            f"{row.target} | {mark} | {row.spread} |"
        )
    pixels = facts.get("pixels", {})
    if pixels:
        out += [
            "",
            "Identical pixels to the bare pool's output, checked in this run: "
            + "; ".join(
                f"{fig}: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in same.items())
                for fig, same in pixels.items()
            )
            + ".",
        ]
    out += against_pillow_table(res)
    out += [
        "",
        "## Throughput by system (tasks/s, median and min–max over rounds)",
        "",
        "| figure | system | median | spread |",
        "|---|---|---|---|",
    ]
    for (figure, system), by_round in sorted(res.rates.items()):
        if figure.startswith("ablation"):
            continue
        values = list(by_round.values())
        out.append(f"| {figure} | {system} | {median(values):.1f} | {spread(values, '{:.1f}')} |")
    out += [
        "",
        "## Where the CPU goes (ms of CPU per task, medians over rounds)",
        "",
        "CPU time is read from /proc for every process involved, so it does not depend on "
        "what else the shared machine runs. `rabbitmq` is the whole broker (other users' "
        "queues included), `client` is this benchmark process.",
        "",
        "| figure | system | components |",
        "|---|---|---|",
    ]
    for figure, system in sorted(res.rates):
        if figure.startswith("ablation"):
            continue
        cpu = res.cpu_ms_per_task(figure, system)
        parts = ", ".join(f"{c} {cpu[c]:.2f}" for c in _components(system) if c in cpu)
        if system not in RELEVANT:
            parts = parts.replace("celery", "celery worker")
        out.append(f"| {figure} | {system} | {parts} |")
    if mem:
        out += [
            "",
            "## Memory with a deep queue (e)",
            "",
            "A fresh coordinator queues the tasks (sleep 0) with no worker, then a worker "
            "joins and drains them; RSS is sampled every 50 ms (worker = its process and "
            "its pool processes, summed).",
            "",
            "| queued | depth seen | coordinator peak | worker peak | drain rate |",
            "|---|---|---|---|---|",
        ]
        for m in mem:
            out.append(
                f"| {m['depth']} | {m['queued']} | {m['coordinator_mb']:.0f} MB | "
                f"{m['worker_mb']:.0f} MB | {m['drain_rate']:.0f} tasks/s |"
            )
    if bb:
        out += [
            "",
            "## Broker traffic (f)",
            "",
            "Bytes in and out of RabbitMQ on the connections of each system during one "
            "no-op run (rabbitmqctl `recv_oct` + `send_oct`): publish, delivery, ack, "
            "confirms, and for Celery the results, which travel through the broker.",
            "",
            "| system | tasks | bytes | per task |",
            "|---|---|---|---|",
        ]
        for system, b in bb.items():
            out.append(f"| {system} | {b['tasks']} | {b['bytes']} | {b['per_task']:.0f} B |")
    out += _ablations(res)
    if history.strip():
        out += ["", history.strip()]
    links = Path(__file__).with_name("LINKS.md")  # written by benchmarks/links.py (issue 16)
    if links.exists():
        out += ["", "#" + links.read_text().strip()]
    return "\n".join(out) + "\n"


def _ablations(res: Results) -> list[str]:
    """Each optimisation undone (benchmarks/ablate.py) next to an intact instance."""
    pairs = sorted(
        {(f, s) for f, s in res.rates if f.startswith("ablation ") and s.startswith("without: ")}
    )
    if not pairs:
        return []
    out = [
        "",
        "## What each optimisation bought (measured in this run)",
        "",
        "Each row runs a fresh coordinator + worker with one optimisation put back to the "
        "code it replaced (`benchmarks/ablate.py`), alternating round by round with a fresh "
        "intact instance, on the figure the change is for (images: 32 × 1080p, thumbs: "
        "1 000 thumbnails, noops: 4 000 no-op tasks). CPU is coordinator + worker (with its "
        "pool) + broker, per task; the last column splits what undoing the change cost "
        "(+) or saved (−) by process, which shows where it acts and how noisy the pool's "
        "share is on a shared machine.",
        "",
        "| optimisation | figure | tasks/s with it | without it | speed-up | CPU ms/task with "
        "it | without it | extra CPU without it: coordinator / worker main / pool / broker |",
        "|---|---|---|---|---|---|---|---|",
    ]
    parts = ("coordinator", "worker", "rabbitmq")
    for figure, system in pairs:
        label = system.removeprefix("without: ")
        intact = f"with: {label}"
        ratios = [1 / r for r in res.ratios(figure, system, intact)]
        with_it = res.values(figure, intact)
        without = res.values(figure, system)
        a, b = res.cpu_ms_per_task(figure, intact), res.cpu_ms_per_task(figure, system)
        cpu_with = sum(a.get(c, 0) for c in parts)
        cpu_without = sum(b.get(c, 0) for c in parts)

        def pool(cpu: dict[str, float]) -> float:
            return cpu.get("worker", 0) - cpu.get("worker main", 0)

        split = " / ".join(
            f"{d:+.2f}"
            for d in (
                b.get("coordinator", 0) - a.get("coordinator", 0),
                b.get("worker main", 0) - a.get("worker main", 0),
                pool(b) - pool(a),
                b.get("rabbitmq", 0) - a.get("rabbitmq", 0),
            )
        )
        out.append(
            f"| {label} | {figure.removeprefix('ablation ')} | {median(with_it):.1f} | "
            f"{median(without):.1f} | ×{median(ratios):.2f} ({spread(ratios)}) | "
            f"{cpu_with:.2f} | {cpu_without:.2f} | {split} |"
        )
    return out


def write(path: Path, text: str, log: Callable[[str], None]) -> None:
    path.write_text(text)
    log(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    """Render REPORT.md again from a saved run (benchmarks/results/run-*.json), for instance
    after editing OPTIMISATIONS.md; the figures themselves are never re-measured here."""
    import argparse
    import json

    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=main.__doc__)
    parser.add_argument("run", type=Path, help="a benchmarks/results/run-*.json")
    parser.add_argument("--out", type=Path, default=here / "REPORT.md")
    args = parser.parse_args(argv)
    saved = json.loads(args.run.read_text())
    facts = saved["facts"]
    history = here / "OPTIMISATIONS.md"
    text = render(
        [Run(**r) for r in saved["runs"]],
        facts,
        facts.get("machine", {}),
        history.read_text() if history.exists() else "",
        facts.get("flags", ""),
        float(facts.get("seconds", 0)),
    )
    write(args.out, text, print)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
