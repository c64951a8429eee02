"""A folder of distinct photos of mixed sizes, from disk to result files on disk, three ways:
`sd-submit` against sd-coordinator (RabbitMQ) with one sd-worker --async, a bare process pool
doing the same Pillow work, and Celery with the same files. Writes benchmarks/FOLDER.md.

    .venv/bin/python -m benchmarks.folder                        # 5 000 photos, 3 rounds
    .venv/bin/python -m benchmarks.folder --photos 1000 --rounds 2

The photos (JPEG, quality 90; 320×240, 640×480, 1280×720 and 1920×1080 in turn, each drawn
from its own seed) are made once into benchmarks/results/folder-N/. The work is
`thumbnail:128` at PNG level 1 (`workload.thumb_path`, the very steps of our pipeline). Every
system reads the photos from disk and writes one PNG per photo into a fresh folder; a round
runs the three one after another, the order rotating, and ratios are paired within a round.
The bare pool and Celery get paths (same machine), the cheapest way either can be given files;
ours goes through HTTP uploads and downloads, as a user on another machine would, to a fresh
coordinator and worker each round (a coordinator that had stored the photos already would not
store them again).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import workload  # noqa: E402
from benchmarks.harness import BarePool, CeleryPeer, Ours, since_boot  # noqa: E402

SIZES = ((320, 240), (640, 480), (1280, 720), (1920, 1080))
OPS = workload.THUMB_OPS


def _make(args: tuple[int, str]) -> None:
    i, path = args
    width, height = SIZES[i % len(SIZES)]
    Path(path).write_bytes(workload.make_photo(width, height, seed=i))


def make_folder(count: int) -> Path:
    """benchmarks/results/folder-N/: N distinct photos in subfolders of 500, made once."""
    folder = ROOT / "benchmarks" / "results" / f"folder-{count}"
    done = folder / ".complete"
    if done.exists():
        return folder
    jobs = []
    for i in range(count):
        path = folder / "photos" / f"set{i // 500:02d}" / f"img{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        jobs.append((i, str(path)))
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_make, jobs, chunksize=16))
    done.touch()
    return folder


def sources(folder: Path) -> list[Path]:
    return sorted((folder / "photos").rglob("*.jpg"))


def run_ours(ours: Ours, folder: Path, out: Path) -> float:
    command = [
        str(Path(sys.executable).parent / "sd-submit"),
        str(folder / "photos"),
        "-r",
        "--out",
        str(out),
        "--ops",
        OPS,
        "--coordinator",
        ours.cluster.url,
        "--json",
    ]
    started = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=3600, env={**os.environ, "API_TOKEN": ""}
    )
    spent = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"sd-submit failed ({result.returncode}): {result.stderr[-2000:]}")
    return spent


def run_fresh(root: Path, folder: Path, out: Path) -> float:
    """`run_ours` against a coordinator and worker started for it (not timed), then stopped:
    every round stores every photo, as a first run of sd-submit on a folder does. Its files
    are kept until the end (see `main`)."""
    ours = Ours(root)
    ours.start()
    try:
        return run_ours(ours, folder, out)
    finally:
        ours.stop()


def destinations(paths: list[Path], folder: Path, out: Path) -> list[str]:
    dst = []
    for path in paths:
        target = out / path.relative_to(folder / "photos").with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        dst.append(str(target))
    return dst


def run_bare(bare: BarePool, paths: list[Path], folder: Path, out: Path) -> float:
    dst = destinations(paths, folder, out)
    started = time.perf_counter()
    bare.map(workload.thumb_path, [str(p) for p in paths], dst)
    return time.perf_counter() - started


def run_celery(celery: CeleryPeer, paths: list[Path], folder: Path, out: Path) -> float:
    dst = destinations(paths, folder, out)
    started = time.perf_counter()
    celery.run(
        celery.peer.thumb_path, list(zip((str(p) for p in paths), dst, strict=True)), timeout_s=3600
    )
    return time.perf_counter() - started


def check_same(out_ours: Path, out_bare: Path) -> int:
    """How many of ours differ in pixels from the bare pool's (0 expected)."""
    differ = 0
    for bare in sorted(out_bare.rglob("*.png"))[:50]:
        mine = out_ours / "photos" / bare.relative_to(out_bare)
        differ += not workload.same_pixels(mine, bare)
    return differ


def report(count: int, rounds: list[dict[str, float]], load: str, differ: int) -> str:
    def rate(name: str) -> list[float]:
        return [count / r[name] for r in rounds]

    ours, bare, celery = rate("ours"), rate("bare pool"), rate("celery")
    vs_bare = [o / b for o, b in zip(ours, bare, strict=True)]
    vs_celery = [o / c for o, c in zip(ours, celery, strict=True)]

    def cell(values: list[float], fmt: str = ".0f") -> str:
        return (
            f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"
            if len(values) > 1
            else f"{values[0]:{fmt}}"
        )

    return "\n".join(
        [
            "# A folder of photos in, a folder of results out",
            "",
            "Written by `benchmarks/folder.py` (its docstring has the set-up). "
            f"{count} distinct JPEG photos of mixed sizes (320×240 to 1920×1080) → `{OPS}` "
            f"PNGs, from disk to files on disk, {len(rounds)} round(s); medians with min–max "
            "over rounds.",
            "",
            f"Machine: {os.cpu_count()} cores; load average at the start {load} ("
            + (
                "shared with other work"
                if float(load.split()[0]) > (os.cpu_count() or 1)
                else "otherwise quiet"
            )
            + f"; up {since_boot()} since boot): compare the ratios, measured round by round, "
            "more than the rates.",
            "",
            "| system | photos/s | ours ÷ it |",
            "|---|---|---|",
            f"| sd-submit → sd-coordinator + 1 sd-worker (RabbitMQ) | {cell(ours)} | – |",
            f"| bare process pool (2 processes, paths) | {cell(bare)} | {cell(vs_bare, '.3f')} |",
            f"| Celery prefork -c 2 (paths in the message) | {cell(celery)} | "
            f"{cell(vs_celery, '.3f')} |",
            "",
            f"Targets: at least 0.9 of the bare pool's rate: "
            f"{'met' if statistics.median(vs_bare) >= 0.9 else 'missed'} "
            f"({statistics.median(vs_bare):.3f}); ahead of Celery: "
            f"{'met' if statistics.median(vs_celery) > 1 else 'missed'} "
            f"({statistics.median(vs_celery):.3f}).",
            "",
            f"Pixels: {differ} of 50 results checked differ from the bare pool's (0 expected).",
            "",
            "Ours moves every photo over HTTP twice (upload, download), stores each input once "
            "on disk (so that no task is lost if the coordinator dies) and records each task in "
            "SQLite, each round against a fresh coordinator and worker (started before the "
            "clock), as a first run on a folder; the bare pool and Celery are handed file paths "
            "on the same disk.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "FOLDER.md"))
    args = parser.parse_args()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    folder = make_folder(args.photos)
    paths = sources(folder)
    rounds: list[dict[str, float]] = []
    # Nothing is deleted until every round has run: on an ext4 without a journal (this VM's
    # disk) creating a file within minutes of deleting thousands costs up to a millisecond in
    # the kernel (`recently_deleted`), which would tax whichever system runs next.
    with tempfile.TemporaryDirectory(prefix="sd-folder-") as tmp:
        work = Path(tmp)
        bare = BarePool(2)
        celery = CeleryPeer(work)
        celery.start()
        try:
            systems: list[tuple[str, Any]] = [
                ("ours", lambda out: run_fresh(work / f"ours-{out.name}", folder, out)),
                ("bare pool", lambda out: run_bare(bare, paths, folder, out)),
                ("celery", lambda out: run_celery(celery, paths, folder, out)),
            ]
            differ = -1
            for rnd in range(args.rounds):
                spent: dict[str, float] = {}
                order = systems[rnd % 3 :] + systems[: rnd % 3]
                for name, body in order:
                    out = work / f"out-{name.replace(' ', '-')}-{rnd}"
                    spent[name] = body(out)
                    print(
                        f"round {rnd} {name}: {args.photos / spent[name]:.1f} photos/s",
                        file=sys.stderr,
                    )
                if rnd == 0:
                    differ = check_same(work / "out-ours-0", work / "out-bare-pool-0")
                rounds.append(spent)
        finally:
            celery.stop()
            bare.stop()
    Path(args.out).write_text(report(args.photos, rounds, load, differ))
    results = ROOT / "benchmarks" / "results"
    (results / f"folder-{int(time.time())}.json").write_text(json.dumps(rounds))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
