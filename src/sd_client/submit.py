"""sd-submit: a folder of photos in, a folder of results out, through one growing job.

Files are read from disk a batch at a time (at most `--parallel` batches in memory), each
result is written into `--out` as soon as it is finished, atomically, and a second run resumes:
files whose results are in `--out` are neither sent nor downloaded again, and an interrupted
run's job (still open) is continued rather than sent again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from sd_client.client import (
    PART_OVERHEAD,
    Client,
    Job,
    SdError,
    Task,
    batch_files,
    write_atomic,
)
from sd_client.progress import Progress
from sd_client.walk import NOT_WALKED, Skipped, Source, walk
from sd_common.cli import fail, load_settings
from sd_common.result_names import result_relpath
from sd_common.version import VERSION

STATE_FILE = ".sd-submit.json"
RESULTS_HELD = 64  # results received and not yet written into --out
EXIT_FAILURES = 1
EXIT_INTERRUPTED = 130


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sd-submit",
        description="Send image files and folders through a pipeline on a Sistema Distribuido "
        "cluster and write each result into --out as soon as it is finished, keeping relative "
        "paths (trip/day1/a.jpg -> OUT/trip/day1/a.png). Run it again to resume: finished "
        "results are neither sent nor downloaded again. Exits 1 if anything failed (with a "
        "table of what and why), 130 when interrupted.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    parser.add_argument(
        "--ops",
        default="grayscale",
        help="pipeline, e.g. grayscale,blur:2,thumbnail:512 (default grayscale)",
    )
    parser.add_argument("--out", required=True, help="folder for the results")
    parser.add_argument("-r", "--recursive", action="store_true", help="walk into subfolders")
    parser.add_argument(
        "--coordinator",
        help="coordinator URL, or HOST:PORT (default: http://COORDINATOR_IP:"
        "COORDINATOR_PORT from the environment or .env)",
    )
    parser.add_argument("--token", help="API token (default: API_TOKEN)")
    parser.add_argument("--copies", type=int, default=1, help="tasks per file (default 1)")
    parser.add_argument(
        "--parallel", type=int, default=3, help="batches uploading at once (default 3)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    args = parser.parse_args(argv)
    if not 1 <= args.copies <= 1000:
        parser.error("--copies must be between 1 and 1000")
    if not 1 <= args.parallel <= 32:
        parser.error("--parallel must be between 1 and 32")
    if args.coordinator is not None:
        if "://" not in args.coordinator:  # 100.64.0.1:8000, as a Tailscale address is given
            args.coordinator = f"http://{args.coordinator}"
        if not args.coordinator.startswith(("http://", "https://")):
            parser.error(f"--coordinator {args.coordinator}: the URL must be http:// or https://")
    try:  # before anything is sent: results would have nowhere to go
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        parser.error(f"--out {args.out} is a file, not a folder")
    except OSError as exc:
        parser.error(f"cannot create --out {args.out}: {exc.strerror or exc}")
    return args


@dataclass
class Failure:
    """A file (or one of its copies) with no result, and why."""

    file: str
    reason: str


@dataclass
class Run:
    """What one run did."""

    job_id: str | None = None
    files: int = 0
    already: int = 0
    sent: int = 0
    written: int = 0
    failed: list[Failure] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def problems(self) -> list[Failure]:
        """Everything that should have produced a result and did not."""
        return self.failed + [Failure(s.path, s.reason) for s in self.skipped if s.problem]

    def summary(self, exit_code: int) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "files": self.files,
            "already_done": self.already,
            "sent": self.sent,
            "written": self.written,
            "failed": [asdict(f) for f in self.problems],
            "skipped": [asdict(s) for s in self.skipped if not s.problem],
            "exit_code": exit_code,
        }


class Submission:
    """One run of sd-submit against one coordinator."""

    def __init__(self, args: argparse.Namespace, client: Client, run: Run) -> None:
        self.args = args
        self.client = client
        self.run = run
        self.out = Path(args.out)
        self.progress = Progress()
        self.by_name: dict[str, Source] = {}
        # Result paths this run still has to write (the others are in --out already).
        self.wanted: set[str] = set()

    def outputs(self, source: Source) -> list[str]:
        return [result_relpath(source.name, c) for c in range(self.args.copies)]

    async def go(self, sources: list[Source]) -> None:
        todo = [s for s in sources if not all((self.out / o).is_file() for o in self.outputs(s))]
        self.run.already = len(sources) - len(todo)
        if not todo:
            return
        self.by_name = {s.name: s for s in todo}
        self.wanted = {o for s in todo for o in self.outputs(s)}
        previous, in_jobs = await self._previous_jobs()
        send = [s for s in todo if s.name not in in_jobs]
        target = next((j for j in previous if j.open), None)
        if send and target is None:
            target = await self.client.create_job(self.args.ops, self.args.copies, self._job_name())
        jobs = {j.job_id: j for j in [*previous, *([target] if target else [])]}
        self._save_state(list(jobs))
        self.run.job_id = (target or previous[-1]).job_id
        self.progress.files, self.progress.tasks = len(send), len(self.wanted)
        # In one group: an upload the coordinator refuses (its disk full, say) ends the run
        # with its reason, instead of leaving the results waited for a job never closed.
        async with asyncio.TaskGroup() as group:
            if target is not None:
                group.create_task(self._send(target, send))
            for job_id in jobs:
                group.create_task(self._receive(job_id))
        self.progress.end()
        (self.out / STATE_FILE).unlink(missing_ok=True)

    def _settings(self) -> dict[str, Any]:
        return {"coordinator": self.client.url, "ops": self.args.ops, "copies": self.args.copies}

    def _save_state(self, job_ids: list[str]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        state = {**self._settings(), "jobs": job_ids}
        write_atomic(self.out / STATE_FILE, json.dumps(state).encode())

    async def _previous_jobs(self) -> tuple[list[Job], set[str]]:
        """An interrupted run's jobs (same coordinator, pipeline and copies; not cancelled),
        and the names they hold: those are not sent again, their results are awaited."""
        jobs: list[Job] = []
        names: set[str] = set()
        try:
            state = json.loads((self.out / STATE_FILE).read_text())
            same = {k: state.get(k) for k in self._settings()} == self._settings()
            ids = [str(i) for i in state.get("jobs", [])] if same else []
        except (OSError, ValueError, AttributeError):
            ids = []
        for job_id in ids:
            try:
                job = await self.client.job(job_id)
            except SdError:  # forgotten by the coordinator (its data was reset)
                continue
            if job.state == "cancelled":
                continue
            jobs.append(job)
            names |= {t.filename async for t in self.client.tasks(job_id) if t.filename}
        return jobs, names

    def _job_name(self) -> str:
        first = Path(self.args.paths[0]).resolve().name
        more = len(self.args.paths) - 1
        return (first + (f" +{more}" if more else ""))[:200]

    def _batches(self, job: Job, send: list[Source]) -> Iterator[list[Source]]:
        """Batches within the coordinator's limits, the first ones small (`batch_files`)."""
        limit = job.max_upload_bytes
        batch: list[Source] = []
        size = 0
        sent = 0
        for source in send:
            cost = source.size + len(source.name.encode()) + PART_OVERHEAD
            if limit and cost > limit:
                reason = "larger than the coordinator's upload limit (MAX_UPLOAD_MB)"
                self.run.skipped.append(Skipped(str(source.path), reason, True))
                continue
            full = len(batch) >= batch_files(sent, job.max_files)
            if batch and ((limit and size + cost > limit) or full):
                yield batch
                sent += 1
                batch, size = [], 0
            batch.append(source)
            size += cost
        if batch:
            yield batch

    async def _send(self, job: Job, send: list[Source]) -> None:
        """Upload in batches, `--parallel` at once (each read from disk just before), then
        close the job."""
        slots = asyncio.Semaphore(self.args.parallel)

        async def upload(batch: list[Source]) -> None:
            try:
                files, unreadable = await asyncio.to_thread(read_batch, batch)
                self.run.skipped += unreadable
                if files:
                    for answer in await self.client.add_files(job.job_id, files):
                        if answer.status == "rejected":
                            self._lost(answer.name, f"rejected: {answer.detail}")
                self.run.sent += len(files)
                self.progress.sent += len(batch)
                self.progress.draw()
            finally:
                slots.release()

        async with asyncio.TaskGroup() as group:
            for batch in self._batches(job, send):
                await slots.acquire()  # bounds the batches held in memory
                group.create_task(upload(batch))
        await self.client.close_job(job.job_id)

    def _lost(self, name: str, reason: str) -> None:
        """A file that will have no result: it fails, and is no longer waited for."""
        source = self.by_name.get(name)
        self.run.failed.append(Failure(str(source.path) if source else name, reason))
        if source is not None:
            for output in self.outputs(source):
                if output in self.wanted:
                    self.wanted.discard(output)
                    self.progress.tasks -= 1

    async def _receive(self, job_id: str) -> None:
        """Write each result as it finishes (in a thread, while the next ones arrive); note
        each failure."""
        writer = ResultWriter(self.out, self._written)
        try:
            async for task, png in self.client.finished_results(job_id):
                target = task.result_path
                if target not in self.wanted:
                    continue
                self.wanted.discard(target)
                if png is not None:
                    await writer.put(task, png)
                else:
                    reason = task.error or (
                        "its result file is missing" if task.state == "done" else task.state
                    )
                    self.run.failed.append(Failure(self._file_of(task), reason))
                    self.progress.failed += 1
                    self.progress.draw()
        finally:
            await writer.drain()

    def _written(self, task: Task, error: OSError | None) -> None:
        if error is None:
            self.run.written += 1
            self.progress.done += 1
        else:
            self.run.failed.append(
                Failure(task.filename or task.task_id, f"result not written: {error}")
            )
            self.progress.failed += 1
        self.progress.draw()

    def _file_of(self, task: Task) -> str:
        source = self.by_name.get(task.filename or "")
        name = str(source.path) if source else (task.filename or task.task_id)
        return f"{name} (copy {task.copy + 1})" if task.copy else name


def read_batch(batch: list[Source]) -> tuple[list[tuple[str, bytes]], list[Skipped]]:
    """A batch's files as `(name, bytes)`, and those that could not be read."""
    files, unreadable = [], []
    for source in batch:
        try:
            files.append((source.name, source.path.read_bytes()))
        except OSError as exc:
            unreadable.append(Skipped(str(source.path), f"unreadable: {exc.strerror}", True))
    return files, unreadable


class ResultWriter:
    """Writes results into a folder in a thread, each hop taking every result that arrived
    while the previous one wrote: one thread hop per group, not per file."""

    def __init__(
        self, out: Path, written: Callable[[Task, OSError | None], None], held: int = RESULTS_HELD
    ) -> None:
        self.out = out
        self.written = written
        self.slots = asyncio.Semaphore(held)  # results in memory, not yet written
        self.pending: list[tuple[Task, bytes]] = []
        self.flushing: asyncio.Task[None] | None = None

    async def put(self, task: Task, png: bytes) -> None:
        await self.slots.acquire()
        self.pending.append((task, png))
        if self.flushing is None or self.flushing.done():
            if self.flushing is not None:
                self.flushing.result()  # an unexpected error in the last flush surfaces here
            self.flushing = asyncio.create_task(self._flush())

    async def drain(self) -> None:
        """Wait until every result put is written (or has failed)."""
        while self.flushing is not None and not self.flushing.done():
            await asyncio.shield(self.flushing)
        if self.flushing is not None and not self.flushing.cancelled():
            self.flushing.result()  # an unexpected error in a flush surfaces here

    async def _flush(self) -> None:
        while self.pending:
            group, self.pending = self.pending, []
            outcomes = await asyncio.to_thread(self._write, group)
            for (task, _), error in zip(group, outcomes, strict=True):
                self.slots.release()
                self.written(task, error)

    def _write(self, group: list[tuple[Task, bytes]]) -> list[OSError | None]:
        outcomes: list[OSError | None] = []
        for task, png in group:
            try:
                write_atomic(self.out / task.result_path, png)
                outcomes.append(None)
            except OSError as exc:
                outcomes.append(exc)
        return outcomes


def failure_table(failures: list[Failure]) -> str:
    """`file  reason` rows, the file column as wide as its longest entry (capped)."""
    width = min(max(len("file"), *(len(f.file) for f in failures)), 60)
    rows = [f"{'file':<{width}}  reason", f"{'-' * width}  {'-' * 6}"]
    rows += [f"{f.file:<{width}}  {f.reason}" for f in failures]
    return "\n".join(rows)


async def submit(args: argparse.Namespace, url: str, token: str | None, run: Run) -> None:
    sources, run.skipped = walk(args.paths, args.recursive)
    run.files = len(sources)
    async with Client(url, token) as client:
        await Submission(args, client, run).go(sources)


def _first(error: BaseException) -> BaseException:
    """The first error of a (nested) exception group: the one to tell the user."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def main(argv: list[str] | None = None) -> None:
    """Entry point of the sd-submit console script."""
    args = parse_args(argv)
    settings = load_settings()
    url = args.coordinator or f"http://{settings.coordinator_ip}:{settings.coordinator_port}"
    token = args.token or settings.api_token
    run = Run()
    code = 0
    try:
        try:
            asyncio.run(submit(args, url, token, run))
        except BaseExceptionGroup as group:  # uploads and downloads run in task groups
            raise _first(group) from None
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        print(
            f"\ninterrupted: {run.written} result(s) written to {args.out}; run the same "
            "command again to resume",
            file=sys.stderr,
        )
    except SdError as exc:
        fail(f"the coordinator at {url} answered {exc.status}: {exc.detail}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        fail(
            f"cannot reach the coordinator at {url} ({str(exc) or type(exc).__name__}); is "
            "sd-coordinator running? Use --coordinator URL"
        )
    except OSError as exc:  # on this machine: a photo that vanished, --out full or read-only
        fail(f"{exc.strerror or exc}: {exc.filename or args.out}")
    problems = run.problems
    if code == 0 and problems:
        code = EXIT_FAILURES
    if args.json:
        print(json.dumps(run.summary(code), ensure_ascii=False, indent=2))
    else:
        skipped = [s for s in run.skipped if not s.problem]
        folders = sum(s.reason == NOT_WALKED for s in skipped)
        print(
            f"{run.written} result(s) written to {args.out}, {run.already} already there; "
            f"{len(problems)} failed, {len(skipped) - folders} skipped (not images)"
            + (f", {folders} subfolder(s) not walked (use -r)" if folders else "")
            + (f"; job {run.job_id}" if run.job_id else ""),
            file=sys.stderr,
        )
        if not run.files and not problems:
            print(f"no image files in {' '.join(args.paths)}: nothing was sent", file=sys.stderr)
        if problems:
            print(failure_table(problems), file=sys.stderr)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
