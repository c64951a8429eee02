"""One command for every figure of issue #5: `.venv/bin/python benchmarks/run.py [--quick]`.

Starts the real programs (sd-coordinator with RABBIT_HOST on a unique queue, one
`sd-worker --async`), a Celery worker on the same RabbitMQ, and a bare process pool; measures
them round by round, interleaved; writes benchmarks/REPORT.md and the raw runs to
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "src")]

from benchmarks import report  # noqa: E402
from benchmarks.figures import FULL, QUICK, Bench  # noqa: E402
from benchmarks.harness import BROKER, free_port, rabbitmq_version, since_boot  # noqa: E402

FIGURES = ("images", "thumbs", "noops", "latency", "memory", "ablations")


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "pillow": version("pillow"),
        "rabbitmq": rabbitmq_version(),
        "celery": version("celery"),
        "aio-pika": version("aio-pika"),
        "load average at start (1/5/15 min)": load,
        "up since boot": since_boot(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and tasks (~3 min)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(FIGURES)}")
    parser.add_argument("--out", type=Path, default=HERE / "REPORT.md", help="report path")
    parser.add_argument(
        "--private-broker",
        action="store_true",
        help="start a private node of the installed RabbitMQ on a free port for this run "
        "(default: the machine's node on 127.0.0.1:5672)",
    )
    args = parser.parse_args(argv)
    figures = args.only.split(",") if args.only else list(FIGURES)
    sizes = QUICK if args.quick else FULL
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="sd-bench-"))
    if args.private_broker:
        BROKER.start_private(work, free_port())
        log(f"private RabbitMQ node {BROKER.node} on port {BROKER.port}")
    info = machine()
    info["broker"] = f"{BROKER.node} on 127.0.0.1:{BROKER.port}" + (
        " (private node for this run)" if args.private_broker else " (the machine's node)"
    )
    log(f"working in {work}; {sizes}")
    bench = Bench(work, sizes, log)
    failed: list[str] = []
    try:
        bench.start()
        bench.message_sizes()
        for figure in figures:
            log(f"figure {figure}")
            try:
                getattr(bench, figure)()
            except Exception as exc:  # the other figures are still worth a report
                log(f"figure {figure} failed: {type(exc).__name__}: {exc}")
                failed.append(figure)
    finally:
        bench.stop()
        BROKER.stop_private()
    info["load average at end (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    bench.facts["machine"] = info
    bench.facts["flags"] = "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    bench.facts["seconds"] = time.monotonic() - started
    bench.save(results / time.strftime("run-%Y%m%d-%H%M%S.json"))
    history = HERE / "OPTIMISATIONS.md"
    text = report.render(
        bench.runs,
        bench.facts,
        info,
        history.read_text() if history.exists() else "",
        bench.facts["flags"],
        bench.facts["seconds"],
    )
    report.write(args.out, text, log)
    if failed:
        log(f"failed figures (not in the report): {', '.join(failed)}; their logs are in {work}")
        return 1
    # Every round wrote fresh outputs (gigabytes in a full run); a failed run keeps its folder.
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
