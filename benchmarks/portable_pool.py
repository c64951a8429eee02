"""What the portable process pool (Windows, macOS, PORTABLE_RUNTIME=true) costs against the
Linux event-loop pool: the same Executor calls, rounds alternating between the two pools in one
run, so a loaded machine's noise falls on both. Writes benchmarks/PORTABLE.md.

    .venv/bin/python benchmarks/portable_pool.py [--rounds 6] [--out benchmarks/PORTABLE.md]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.workload import make_photo, noop, thumb_bytes
from sd_worker.executor import Executor

WORKLOADS = {
    "no-op calls": (noop, (), 4000),
    "1080p thumbnails (bytes in, PNG out)": (thumb_bytes, (make_photo(1920, 1080),), 200),
}


async def per_second(portable: bool, fn: object, args: tuple[object, ...], calls: int) -> float:
    executor = Executor(2, preload=["benchmarks.workload"], portable=portable)
    executor.start()
    try:
        await executor.ready()
        started = time.perf_counter()
        await asyncio.gather(*(executor.run(fn, *args) for _ in range(calls)))  # type: ignore[arg-type]
        return calls / (time.perf_counter() - started)
    finally:
        executor.stop()


async def measure(rounds: int) -> list[str]:
    lines = [
        "# Portable pool against the Linux event-loop pool",
        "",
        "`benchmarks/portable_pool.py`: two pool processes, the same `Executor.run` calls, "
        f"{rounds} rounds alternating the two pools. Calls per second (median, min-max); the "
        "ratio is portable / fast path, from the medians of the same run.",
        "",
        "| workload | Linux event-loop pool | portable pool | ratio |",
        "|---|---|---|---|",
    ]
    for name, (fn, args, calls) in WORKLOADS.items():
        fast: list[float] = []
        portable: list[float] = []
        for _ in range(rounds):
            fast.append(await per_second(False, fn, args, calls))
            portable.append(await per_second(True, fn, args, calls))
        f, p = statistics.median(fast), statistics.median(portable)
        lines.append(
            f"| {name} | {f:,.0f}/s ({min(fast):,.0f}-{max(fast):,.0f}) | "
            f"{p:,.0f}/s ({min(portable):,.0f}-{max(portable):,.0f}) | {p / f:.2f} |"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("PORTABLE.md"))
    parser.add_argument("--note", default="", help="a line about the machine, for the report")
    args = parser.parse_args()
    lines = asyncio.run(measure(args.rounds))
    if args.note:
        lines += ["", args.note]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
