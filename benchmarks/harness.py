"""Processes under test and what the benchmark reads from them: CPU time, RSS, broker bytes."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks import workload  # noqa: E402
from sd_common.topology import failed_queue_name  # noqa: E402
from support.cluster import Cluster, free_port  # noqa: E402

RABBITMQ_HOME = "/var/lib/rabbitmq"


@dataclass
class BrokerTarget:
    """The RabbitMQ every system of the run uses: the machine's node (rabbit@localhost on
    5672), or a private node of the same installation started for the run (`--private-broker`)
    so that other users of the shared node cannot restart it under the measurements."""

    port: int = 5672
    node: str = "rabbit@localhost"
    private_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args: str, timeout_s: float = 60) -> str:
        """Output of `rabbitmqctl -n NODE ARGS`."""
        return subprocess.run(
            ["rabbitmqctl", "-n", self.node, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        ).stdout

    def process(self) -> psutil.Process | None:
        """The node's Erlang VM: the process listening on its AMQP port."""
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == self.port and conn.pid:
                return psutil.Process(conn.pid)
        return None

    def start_private(self, work: Path, port: int) -> None:
        """Start a node of the installed RabbitMQ on `port`, its data under `work`, and use it."""
        folder = work / "rabbitmq"
        folder.mkdir(parents=True, exist_ok=True)
        work.chmod(0o755)  # the node runs as the rabbitmq user
        shutil.chown(folder, "rabbitmq", "rabbitmq")
        node = f"sdbench{port}@localhost"
        env = (
            f"RABBITMQ_NODENAME={node} RABBITMQ_NODE_PORT={port} "
            f"RABBITMQ_DIST_PORT={free_port()} RABBITMQ_MNESIA_BASE={folder}/mnesia "
            f"RABBITMQ_LOG_BASE={folder}/log RABBITMQ_ENABLED_PLUGINS_FILE={folder}/plugins "
            f"RABBITMQ_CONFIG_FILE={folder}/rabbitmq"
        )
        subprocess.run(
            [
                "su",
                "rabbitmq",
                "-s",
                "/bin/sh",
                "-c",
                f"cd {RABBITMQ_HOME} && {env} /usr/lib/rabbitmq/bin/rabbitmq-server -detached",
            ],
            check=True,
            timeout=60,
        )
        self.port, self.node, self.private_dir = port, node, folder
        wait_for_broker(port, settle_s=0)
        self.ctl("await_startup", timeout_s=120)

    def stop_private(self) -> None:
        if self.private_dir is not None:
            try:
                self.ctl("stop")
            except (subprocess.SubprocessError, OSError):
                pass


BROKER = BrokerTarget()


def unique_queue(prefix: str) -> str:
    """A queue name no other run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def delete_queues(queue: str) -> None:
    """Delete a run's queues (work, dead letters, the academic service's) and its academic
    exchange, those that exist."""

    async def delete() -> None:
        connection = await aio_pika.connect(BROKER.url)
        async with connection:
            for name in (queue, failed_queue_name(queue), f"{queue}.academico.rpc"):
                channel = await connection.channel()
                try:
                    await channel.queue_delete(name)
                except aio_pika.exceptions.AMQPError:
                    pass
            channel = await connection.channel()
            try:
                await channel.exchange_delete(f"{queue}.academico.events")
            except aio_pika.exceptions.AMQPError:
                pass

    asyncio.run(delete())


# -- process trees ------------------------------------------------------------------------


def since_boot() -> str:
    """How long the machine has been up, for a report's machine line: in the first minutes
    after a VM boots, every page of memory touched for the first time costs the kernel far
    more (OPTIMISATIONS.md, session 18), which taxes the systems that write files."""
    minutes = int(time.time() - psutil.boot_time()) // 60
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (pool processes of a forkserver included)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(procs: Iterable[psutil.Process]) -> float:
    """User + system CPU seconds of the processes (threads included)."""
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def rss_bytes(procs: Iterable[psutil.Process]) -> int:
    """Summed resident set size of the processes."""
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def pss_bytes(procs: Iterable[psutil.Process]) -> int:
    """Summed proportional set size: a page shared by n of the processes (the forkserver's
    preloaded modules in every pool process) counts 1/n in each, so the sum counts it once."""
    total = 0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied, AttributeError):
            pass
    return total


class CpuMeter:
    """CPU seconds per component between `start()` and `stop()`: which process paid for what."""

    def __init__(self, components: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self.components = components
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        return {name: cpu_seconds(procs()) for name, procs in self.components.items()}

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> dict[str, float]:
        end = self._read()
        self.used = {k: max(0.0, end[k] - self._start.get(k, 0.0)) for k in end}
        return self.used


class RssSampler:
    """Samples the summed RSS and PSS of process trees on a thread; keeps each tree's peaks."""

    def __init__(
        self, trees: dict[str, Callable[[], list[psutil.Process]]], period_s: float = 0.05
    ) -> None:
        self.trees = trees
        self.period_s = period_s
        self.peak: dict[str, int] = dict.fromkeys(trees, 0)
        self.peak_pss: dict[str, int] = dict.fromkeys(trees, 0)
        self.extra: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, procs in self.trees.items():
                tree = procs()
                self.peak[name] = max(self.peak[name], rss_bytes(tree))
                self.peak_pss[name] = max(self.peak_pss[name], pss_bytes(tree))
            for sample in self.extra:
                sample()
            self._stop.wait(self.period_s)


# -- broker traffic ---------------------------------------------------------------------------


def amqp_ports(procs: Iterable[psutil.Process]) -> set[int]:
    """Local ports of the processes' connections to RabbitMQ."""
    ports: set[int] = set()
    for proc in procs:
        try:
            for conn in proc.net_connections(kind="tcp"):
                if conn.raddr and conn.raddr.port == BROKER.port:
                    ports.add(conn.laddr.port)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return ports


def broker_octets() -> dict[int, tuple[int, int]]:
    """(received, sent) bytes of every RabbitMQ connection, by the client's port."""
    out = BROKER.ctl(
        "-q", "list_connections", "--no-table-headers", "peer_port", "recv_oct", "send_oct"
    )
    octets: dict[int, tuple[int, int]] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            octets[int(parts[0])] = (int(parts[1]), int(parts[2]))
    return octets


def wait_for_broker(port: int | None = None, timeout_s: float = 120, settle_s: float = 5) -> None:
    """Wait until RabbitMQ accepts connections (again), then a little longer for it to settle."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port or BROKER.port), timeout=1):
                break
        except OSError:
            time.sleep(1)
    time.sleep(settle_s)


def rabbitmq_version() -> str:
    """The broker's version, as rabbitmqctl reports it."""
    try:
        return BROKER.ctl("version").strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


# -- our cluster ----------------------------------------------------------------------------


@dataclass
class Ours:
    """sd-coordinator (RABBIT_HOST set, a unique queue) and one `sd-worker --async`, as the
    console scripts, through tests/support/cluster.py."""

    root: Path
    worker_name: str = "bench"
    variant: str | None = None  # an optimisation undone (benchmarks/ablate.py)
    variant_role: str | None = None
    worker_env: dict[str, str] = field(default_factory=dict)  # settings of its worker only
    cluster: Cluster = field(init=False)

    def __post_init__(self) -> None:
        self.queue = unique_queue("sdbench")
        self.cluster = Cluster(self.root, queue=self.queue, RABBIT_PORT=str(BROKER.port))
        self.http = httpx.Client(
            base_url=self.cluster.url,
            timeout=120,
            headers={"Authorization": f"Bearer {self.cluster.token}"},
        )

    def _ablated(self, role: str) -> list[str] | None:
        if self.variant is None or self.variant_role not in (role, "both"):
            return None
        return [sys.executable, "-m", "benchmarks.ablate", self.variant, role]

    def start(self, *, worker: bool = True) -> None:
        command = self._ablated("coordinator")
        if command is None:
            self.cluster.start_coordinator()
        else:
            c = self.cluster
            c._spawn("coordinator", command, self.root / "coordinator", PYTHONPATH=str(ROOT))
            c.wait_until(c._healthy, 30, "coordinator to answer /health")
        if worker:
            self.start_worker()

    def start_worker(self) -> None:
        command = self._ablated("worker")
        if command is None:
            self.cluster.start_worker(self.worker_name, **self.worker_env)
            return
        c, name = self.cluster, self.worker_name
        c._spawn(
            name, [*command, "--async", "--name", name], self.root / name, PYTHONPATH=str(ROOT)
        )
        c.wait_until(lambda: c.worker(name).get("alive") is True, 30, f"worker {name}")

    def stop(self) -> None:
        self.http.close()
        self.cluster.stop()
        delete_queues(self.queue)

    def coordinator(self) -> list[psutil.Process]:
        proc = self.cluster.procs.get("coordinator")
        return tree(proc.pid) if proc else []

    def worker(self) -> list[psutil.Process]:
        proc = self.cluster.procs.get(self.worker_name)
        return tree(proc.pid) if proc else []

    def worker_main(self) -> list[psutil.Process]:
        """The worker's own process, without its pool."""
        return self.worker()[:1]

    def upload(self, files: list[tuple[str, bytes]], ops: str, copies: int) -> str:
        response = self.http.post(
            "/upload",
            files=[("file", f) for f in files],
            data={"ops": ops, "copies": str(copies)},
        )
        response.raise_for_status()
        return str(response.json()["job_id"])

    def submit(self, task_type: str, payload: dict[str, Any], copies: int) -> str:
        response = self.http.post(
            "/task", json={"type": task_type, "payload": payload, "copies": copies}
        )
        response.raise_for_status()
        return str(response.json()["job_id"])

    def wait_jobs(
        self, job_ids: Iterable[str], timeout_s: float = 600, poll_s: float = 0.5
    ) -> float:
        """Wait until every job finished; return the last one's server-side `finished_at`."""
        waiting = set(job_ids)
        # The jobs list is newest first and these are the newest jobs: asking for just them
        # keeps the polling cheap, so it does not weigh on the coordinator being measured.
        # The time comes from the server's `finished_at`, so polling less often costs nothing.
        limit = len(waiting) + 5
        finished_at = 0.0
        deadline = time.monotonic() + timeout_s
        while waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs {waiting} did not finish\n{self.cluster.log_tail()}")
            for job in self.http.get("/jobs", params={"limit": limit}).json():
                if job["job_id"] in waiting and job["state"] in ("done", "failed"):
                    if job["failed"]:
                        raise RuntimeError(f"job {job['job_id']} had failed tasks")
                    waiting.discard(job["job_id"])
                    finished_at = max(finished_at, job["finished_at"])
            if waiting:
                time.sleep(poll_s)
        return finished_at

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"/jobs/{job_id}").json())

    def result(self, filename: str) -> bytes:
        return self.http.get(f"/result/{filename}").content


# -- the Celery peer ------------------------------------------------------------------------


class CeleryPeer:
    """`celery -A benchmarks.celery_peer worker --pool=prefork -c 2` on a unique queue."""

    def __init__(self, root: Path, concurrency: int = 2) -> None:
        self.root = root
        self.queue = unique_queue("celerybench")
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None
        # Read by celery_peer when it is first imported.
        os.environ["BENCH_CELERY_QUEUE"] = self.queue
        os.environ["BENCH_CELERY_BROKER"] = BROKER.url
        from benchmarks import celery_peer

        self.peer = celery_peer

    def start(self, timeout_s: float = 60) -> None:
        log = (self.root / "celery.log").open("ab")
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "celery"),
                "-A",
                "benchmarks.celery_peer",
                "worker",
                "--pool=prefork",
                "-c",
                str(self.concurrency),
                "-Q",
                self.queue,
                "-n",
                f"{self.queue}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "warning",
            ],
            cwd=ROOT,
            env={
                **os.environ,
                "BENCH_CELERY_QUEUE": self.queue,
                "BENCH_CELERY_BROKER": BROKER.url,
                "PYTHONPATH": str(ROOT),
                "C_FORCE_ROOT": "1",
            },  # pickle as root: this machine runs as root
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while True:  # ready when it answers a task
            try:
                self.peer.noop.apply_async().get(timeout=5)
                return
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the Celery worker did not start; see celery.log") from None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        try:
            with self.peer.app.connection_for_write() as conn:
                conn.default_channel.queue_delete(self.queue)
        except Exception:
            pass

    def worker(self) -> list[psutil.Process]:
        return tree(self.proc.pid) if self.proc else []

    def run(
        self,
        task: Any,
        args_list: list[tuple[Any, ...]],
        *,
        pickle: bool = False,
        timeout_s: float = 180,
    ) -> list[Any]:
        """Send every task, then wait for all results (rpc:// backend)."""
        from celery.result import ResultSet

        options = {"serializer": "pickle"} if pickle else {}
        results = ResultSet([task.apply_async(args, **options) for args in args_list])
        return list(results.join_native(timeout=timeout_s))


# -- the bare pool ------------------------------------------------------------------------------


class BarePool:
    """ProcessPoolExecutor(2) on the same cores: the physical limit of the Pillow work.

    Its processes are as lean as a pool can be: the forkserver preloads only the workload
    module, not this benchmark's `__main__` (aio-pika, Celery, httpx, ...), which it would
    otherwise import into every process. With `pillow_blocks_max`, they keep that many of
    Pillow's freed image memory blocks (PILLOW_BLOCKS_MAX, set as our pool processes set it);
    without it, Pillow's default, as by hand."""

    def __init__(self, workers: int = 2, pillow_blocks_max: int | None = None) -> None:
        import multiprocessing

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["benchmarks.workload"])
        if pillow_blocks_max is None:
            self.pool = ProcessPoolExecutor(workers, mp_context=context)
        else:
            self.pool = ProcessPoolExecutor(
                workers,
                mp_context=context,
                initializer=workload.keep_pillow_blocks,
                initargs=(pillow_blocks_max,),
            )
        for future in [self.pool.submit(workload.warm) for _ in range(workers * 4)]:
            future.result()

    def children(self) -> list[psutil.Process]:
        return [psutil.Process(p.pid) for p in self.pool._processes.values()]

    def map(
        self, fn: Callable[..., Any], *iterables: Iterable[Any], chunksize: int = 1
    ) -> list[Any]:
        return list(self.pool.map(fn, *iterables, chunksize=chunksize))

    def stop(self) -> None:
        self.pool.shutdown()
