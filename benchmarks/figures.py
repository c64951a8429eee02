"""Each figure of issue #5, measured side by side: ours, the bare pool and Celery, by rounds."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aio_pika

from benchmarks import workload
from benchmarks.harness import (
    BROKER,
    BarePool,
    CeleryPeer,
    CpuMeter,
    Ours,
    RssSampler,
    amqp_ports,
    broker_octets,
    unique_queue,
    wait_for_broker,
)
from sd_common.messages import InputRef, TaskMessage
from sd_common.settings import Settings

OUR_PILLOW_BLOCKS = int(Settings.model_fields["pillow_blocks_max"].default)
# The physical limit, like for like: ProcessPoolExecutor(cpu_count) doing only decode →
# operation → PNG on bytes in memory (map, chunksize=1), at the system's zlib level and
# PILLOW_BLOCKS_MAX; every image figure is reported against it.
PILLOW_ALONE = "Pillow work alone"
OUR_PNG_LEVEL = int(Settings.model_fields["png_compress_level"].default)
# Thumbnails as a worker on another machine makes them: every result posted over HTTP.
OURS_HTTP = "ours, results over HTTP"


@dataclass
class Run:
    """One timed run of one system."""

    figure: str
    system: str
    round: int
    tasks: int
    seconds: float
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds


@dataclass
class Sizes:
    """How many tasks each figure runs."""

    rounds: int
    images: int
    images_natural: int
    thumbs: int
    noops: int
    latency: int
    memory_depths: tuple[int, ...]
    ablation_rounds: int = 2


ABLATION_FIGURES = {
    "results over HTTP (no shared storage)": "images",
    "per-task result posts (over HTTP)": "thumbs",
    "input bytes pickled to the pool (over HTTP)": "images",
    "acks one by one": "noops",
    "pool driven by threads (ProcessPoolExecutor)": "thumbs",
    "batches sent without lingering": "thumbs",
    "asyncio event loop in the worker": "noops",
    "/working on every task change": "thumbs",
    "prefetch tuned on a timer only": "noops",
    "outcomes stored one by one": "noops",
    "services dependency in the thread pool": "thumbs",
    "published through aio-pika's Exchange.publish": "noops",
    "publishes queued 10 at a time (aiormq's FRAME_BUFFER_SIZE)": "noops",
    "deliveries through aio-pika's Queue.consume": "noops",
    "one task per message": "thumbs",
    "Pillow keeps 4 freed image blocks (PILLOW_BLOCKS_MAX=4)": "images",
    # Four jobs a round: full collections come every couple of jobs, not within one.
    "garbage collector at Python's defaults": "noops",
}

FULL = Sizes(
    rounds=7,
    images=200,
    images_natural=24,
    thumbs=2000,
    noops=6_000,
    latency=200,
    memory_depths=(1_000, 10_000),
)
QUICK = Sizes(
    rounds=2,
    images=40,
    images_natural=12,
    thumbs=1000,
    noops=4_000,
    latency=60,
    memory_depths=(1_000, 10_000),
    ablation_rounds=0,
)


class Bench:
    """Holds the systems under test and every measurement taken."""

    def __init__(self, work: Path, sizes: Sizes, log: Callable[[str], None]) -> None:
        self.work = work
        self.sizes = sizes
        self.log = log
        self.runs: list[Run] = []
        self.facts: dict[str, Any] = {}
        self.inputs = work / "inputs"
        self.outputs = work / "outputs"
        self.inputs.mkdir(parents=True, exist_ok=True)
        self.outputs.mkdir(parents=True, exist_ok=True)
        self.photo = workload.make_photo(1920, 1080, seed=0)
        self.smalls = [workload.make_photo(640, 480, seed=s) for s in (1, 2)]
        self.photo_path = self._write("photo.jpg", self.photo)
        self.small_paths = [self._write(f"small{i}.jpg", d) for i, d in enumerate(self.smalls)]
        self.ours = Ours(work / "ours")
        self.celery = CeleryPeer(work)
        self.bare: BarePool | None = None
        self.alone: BarePool | None = None
        if workload.OUR_PNG_LEVEL != OUR_PNG_LEVEL:
            raise RuntimeError(
                f"workload.OUR_PNG_LEVEL is {workload.OUR_PNG_LEVEL}, the "
                f"system's PNG_COMPRESS_LEVEL default {OUR_PNG_LEVEL}"
            )
        self.components: dict[str, Callable[[], list[Any]]] = {
            "coordinator": self.ours.coordinator,
            "worker": self.ours.worker,
            "worker main": self.ours.worker_main,
            "celery": self.celery.worker,
            "bare": lambda: self.bare.children() if self.bare else [],
            "pillow alone": lambda: self.alone.children() if self.alone else [],
            "rabbitmq": lambda: [p] if (p := BROKER.process()) else [],
            "client": lambda: [_self_process()],
        }

    def _write(self, name: str, data: bytes) -> str:
        path = self.inputs / name
        path.write_bytes(data)
        return str(path)

    def start(self) -> None:
        self.ours.start()
        self.celery.start()
        self.bare = BarePool(2)
        self.alone = BarePool(os.cpu_count() or 1, pillow_blocks_max=OUR_PILLOW_BLOCKS)

    def stop(self) -> None:
        for pool in (self.bare, self.alone):
            if pool is not None:
                pool.stop()
        for stop in (self.ours.stop, self.celery.stop):
            if stop is not None:
                try:
                    stop()
                except Exception as exc:
                    self.log(f"stopping: {exc}")

    def timed(
        self,
        figure: str,
        system: str,
        rnd: int,
        body: Callable[[], tuple[int, float]],
        components: dict[str, Callable[[], list[Any]]] | None = None,
    ) -> Run:
        """Run `body` (returns tasks, seconds) with per-component CPU accounting."""
        meter = CpuMeter(components or self.components)
        for attempt in range(3):
            meter.start()
            try:
                tasks, seconds = body()
                break
            except Exception as exc:
                # The broker is shared: another user's test may restart it under us.
                self.log(f"  {figure} round {rnd} {system} failed ({exc!r}); retrying")
                if attempt == 2:
                    raise
                wait_for_broker()
        run = Run(figure, system, rnd, tasks, seconds, meter.stop())
        self.runs.append(run)
        self.log(
            f"  {figure:<7} round {rnd} {system:<15} {run.rate:8.1f} tasks/s "
            f"({tasks} in {seconds:.2f} s)"
        )
        return run

    @staticmethod
    def rotated(systems: list[Any], rnd: int) -> list[Any]:
        """Alternate the order round by round so drift on a shared machine favours nobody."""
        ordered = systems[rnd % len(systems) :] + systems[: rnd % len(systems)]
        return ordered if rnd % 2 == 0 else ordered[::-1]

    # -- (a) and (g): 1080p JPEG → grayscale PNG ------------------------------------------------

    def fresh(self, name: str, rnd: int, n: int) -> list[str]:
        """Output paths no earlier round wrote: every system writes new files, as ours does
        (each result its own name), never truncating old ones. Writing over old files cost
        the bare pool ~9 % on thumbnails here (one pool, 6 alternating rounds of 2 000:
        fresh files faster in every round, ×1.04–1.19; 1080p images showed no difference),
        which flattered ours in (b) until session 5."""
        folder = self.outputs / name / f"round{rnd}"
        folder.mkdir(parents=True, exist_ok=True)
        return [str(folder / f"{i}.png") for i in range(n)]

    def images(self) -> None:
        n, n_nat = self.sizes.images, self.sizes.images_natural
        src = [self.photo_path] * n
        assert self.bare is not None and self.alone is not None
        bare, alone = self.bare, self.alone
        peer = self.celery.peer
        rnd = 0
        photos, levels = [self.photo] * n, [OUR_PNG_LEVEL] * n

        def ours() -> tuple[int, float]:
            return self.ours_images(self.ours, n)

        def bare_pool() -> tuple[int, float]:
            dst = self.fresh("gray-bare", rnd, n)
            t0 = time.perf_counter()
            bare.map(workload.gray_path, src, dst)
            return n, time.perf_counter() - t0

        def pillow_alone() -> tuple[int, float]:
            t0 = time.perf_counter()
            self._alone = alone.map(workload.gray_alone, photos, levels, chunksize=1)
            return n, time.perf_counter() - t0

        def celery_bytes() -> tuple[int, float]:
            t0 = time.perf_counter()
            self._celery_bytes = self.celery.run(peer.gray_bytes, [(self.photo,)] * n, pickle=True)
            return n, time.perf_counter() - t0

        def celery_path() -> tuple[int, float]:
            dst = self.fresh("gray-celery", rnd, n)
            t0 = time.perf_counter()
            self.celery.run(peer.gray_path, [(self.photo_path, d) for d in dst])
            return n, time.perf_counter() - t0

        def celery_natural() -> tuple[int, float]:
            dst = self.fresh("gray-natural", rnd, n_nat)
            t0 = time.perf_counter()
            self.celery.run(peer.gray_natural, [(self.photo_path, d) for d in dst])
            return n_nat, time.perf_counter() - t0

        systems = [
            ("bare pool", bare_pool),
            ("ours", ours),
            ("celery bytes", celery_bytes),
            ("celery path", celery_path),
            ("celery natural", celery_natural),
            (PILLOW_ALONE, pillow_alone),
        ]
        for rnd in range(self.sizes.rounds):
            for name, body in self.rotated(systems, rnd):
                self.timed("images", name, rnd, body)
            if rnd == 0:
                self._check_pixels(
                    "images",
                    self.fresh("gray-bare", 0, 1)[0],
                    {
                        "ours": self._our_first_result(),
                        PILLOW_ALONE: self._alone[0],
                        "celery bytes": self._celery_bytes[0],
                        "celery path": Path(self.fresh("gray-celery", 0, 1)[0]),
                        "celery natural": Path(self.fresh("gray-natural", 0, 1)[0]),
                    },
                )

    # -- (b): 2 000 thumbnails of 640×480 JPEGs ------------------------------------------------

    def thumbs(self) -> None:
        n = self.sizes.thumbs
        src = [self.small_paths[i % 2] for i in range(n)]
        data = [self.smalls[i % 2] for i in range(n)]
        assert self.bare is not None and self.alone is not None
        bare, alone = self.bare, self.alone
        peer = self.celery.peer
        rnd = 0
        over_http = Ours(
            self.work / "ours-http", worker_name="bench-http", worker_env={"SHARED_STORAGE": "off"}
        )
        http_components = {
            "coordinator": over_http.coordinator,
            "worker": over_http.worker,
            "worker main": over_http.worker_main,
            "rabbitmq": self.components["rabbitmq"],
            "client": self.components["client"],
        }

        def ours() -> tuple[int, float]:
            return self.ours_thumbs(self.ours, n)

        def ours_http() -> tuple[int, float]:
            return self.ours_thumbs(over_http, n)

        def pillow_alone() -> tuple[int, float]:
            t0 = time.perf_counter()
            self._alone = alone.map(workload.thumb_alone, data, [OUR_PNG_LEVEL] * n, chunksize=1)
            return n, time.perf_counter() - t0

        def bare_pool() -> tuple[int, float]:
            dst = self.fresh("thumb-bare", rnd, n)
            t0 = time.perf_counter()
            bare.map(workload.thumb_path, src, dst)
            return n, time.perf_counter() - t0

        def celery_bytes() -> tuple[int, float]:
            t0 = time.perf_counter()
            self._celery_bytes = self.celery.run(
                peer.thumb_bytes, [(d,) for d in data], pickle=True
            )
            return n, time.perf_counter() - t0

        def celery_path() -> tuple[int, float]:
            dst = self.fresh("thumb-celery", rnd, n)
            t0 = time.perf_counter()
            self.celery.run(peer.thumb_path, list(zip(src, dst, strict=True)))
            return n, time.perf_counter() - t0

        systems = [
            ("bare pool", bare_pool),
            ("ours", ours),
            ("celery bytes", celery_bytes),
            ("celery path", celery_path),
            (PILLOW_ALONE, pillow_alone),
            (OURS_HTTP, ours_http),
        ]
        over_http.start()
        try:
            for rnd in range(self.sizes.rounds):
                for name, body in self.rotated(systems, rnd):
                    self.timed(
                        "thumbs", name, rnd, body, http_components if name == OURS_HTTP else None
                    )
                    if rnd == 0 and name == OURS_HTTP:
                        first = over_http.job(self._last_job)["tasks"][0]["result"]
                        http_result = over_http.result(first)
                    elif rnd == 0 and name == "ours":
                        our_result = self._our_first_result()
                if rnd == 0:
                    self._check_pixels(
                        "thumbs",
                        self.fresh("thumb-bare", 0, 1)[0],
                        {
                            "ours": our_result,
                            OURS_HTTP: http_result,
                            PILLOW_ALONE: self._alone[0],
                            "celery bytes": self._celery_bytes[0],
                            "celery path": Path(self.fresh("thumb-celery", 0, 1)[0]),
                        },
                    )
        finally:
            over_http.stop()

    # -- (c): no-op tasks end to end, publishing while consuming ------------------------------

    def noops(self) -> None:
        n = self.sizes.noops
        peer = self.celery.peer

        def ours() -> tuple[int, float]:
            return self.ours_noops(self.ours, n)

        def celery() -> tuple[int, float]:
            t0 = time.perf_counter()
            self.celery.run(peer.noop, [()] * n)
            return n, time.perf_counter() - t0

        def broker() -> tuple[int, float]:
            return n, asyncio.run(_broker_round_trip(n))

        systems = [("ours", ours), ("celery", celery), ("broker alone", broker)]
        for rnd in range(self.sizes.rounds):
            for name, body in self.rotated(systems, rnd):
                if rnd == 0 and name in ("ours", "celery"):
                    self._count_broker_bytes(
                        name,
                        functools.partial(self.timed, "noops", name, rnd, body),
                    )
                else:
                    self.timed("noops", name, rnd, body)

    # -- our system's side of (a), (b), (c), for any running instance -------------------------

    def ours_images(self, ours: Ours, n: int) -> tuple[int, float]:
        t0 = time.time()
        job = ours.upload([("photo.jpg", self.photo)], workload.GRAY_OPS, n)
        if ours is self.ours:  # the job's fixed start cost, which the bare pool does not pay
            self.facts.setdefault("upload_s", []).append(time.time() - t0)
        self._last_job = job
        return n, ours.wait_jobs([job]) - t0

    def ours_thumbs(self, ours: Ours, n: int) -> tuple[int, float]:
        t0 = time.time()
        files = [(f"small{i}.jpg", d) for i, d in enumerate(self.smalls)]
        job = ours.upload(files, workload.THUMB_OPS, n // 2)
        self._last_job = job
        return n, ours.wait_jobs([job]) - t0

    def ours_noops(self, ours: Ours, n: int, chunk: int = 1000) -> tuple[int, float]:
        t0 = time.time()
        with ThreadPoolExecutor(2) as submitters:  # publishing while the worker consumes
            jobs = list(
                submitters.map(
                    lambda _: ours.submit("sleep", {"seconds": 0}, chunk), range(n // chunk)
                )
            )
        return n, ours.wait_jobs(jobs) - t0

    # -- what each optimisation bought: each one undone, side by side ------------------------

    def ablations(self) -> None:
        """Every variant of benchmarks/ablate.py and an intact instance, each a fresh
        coordinator + worker on its own queue, measured on the figure the change is for."""
        from benchmarks.ablate import SLUGS, VARIANTS

        if not self.sizes.ablation_rounds:
            return
        sizes = {"images": 32, "thumbs": 1000, "noops": 4000}
        bodies = {"images": self.ours_images, "thumbs": self.ours_thumbs, "noops": self.ours_noops}
        instances: dict[str, Ours] = {}
        try:
            for label in ["all optimisations", *VARIANTS]:
                slug = next((k for k, v in SLUGS.items() if v == label), None)
                ours = Ours(
                    self.work / f"ablation-{len(instances)}",
                    variant=slug,
                    variant_role=VARIANTS[label][0] if slug else None,
                )
                try:
                    ours.start()
                except Exception as exc:  # a variant that no longer applies: the rest still run
                    self.log(f"  ablation {label!r} did not start, left out: {exc}")
                    with contextlib.suppress(Exception):
                        ours.stop()
                    continue
                instances[label] = ours
            self.log(f"  started {len(instances)} instances for the ablations")
            for rnd in range(self.sizes.ablation_rounds):
                for label in self.rotated([v for v in VARIANTS if v in instances], rnd):
                    figure = ABLATION_FIGURES[label]
                    for name in self.rotated([label, "all optimisations"], rnd):
                        ours = instances[name]
                        components = {
                            "coordinator": ours.coordinator,
                            "worker": ours.worker,
                            "worker main": ours.worker_main,
                            "rabbitmq": self.components["rabbitmq"],
                        }
                        self.timed(
                            f"ablation {figure}",
                            f"without: {label}" if name == label else f"with: {label}",
                            rnd,
                            functools.partial(bodies[figure], ours, sizes[figure]),
                            components,
                        )
        finally:
            for ours in instances.values():
                try:
                    ours.stop()
                except Exception as exc:
                    self.log(f"stopping an ablation instance: {exc}")

    # -- (d): latency of one small task on an idle cluster -----------------------------------

    def latency(self) -> None:
        n = self.sizes.latency
        tiny = workload.make_photo(320, 240, seed=5)
        out: dict[str, list[float]] = {
            "ours sleep 0": [],
            "ours 320×240 grayscale": [],
            "celery noop": [],
        }
        time.sleep(3)  # let the worker's tuning settle back to idle
        for i in range(n):
            t0 = time.time()
            job = self.ours.submit("sleep", {"seconds": 0}, 1)
            out["ours sleep 0"].append(self._wait_one(job) - t0)
            t0 = time.time()
            job = self.ours.upload([("tiny.jpg", tiny)], workload.GRAY_OPS, 1)
            out["ours 320×240 grayscale"].append(self._wait_one(job) - t0)
            t0 = time.perf_counter()
            self.celery.peer.noop.apply_async().get(timeout=30)
            out["celery noop"].append(time.perf_counter() - t0)
            if i % 50 == 49:
                self.log(f"  latency {i + 1}/{n}")
        self.facts["latency_s"] = out

    def _wait_one(self, job_id: str) -> float:
        while True:
            job = self.ours.http.get(f"/jobs/{job_id}").json()
            if job["state"] in ("done", "failed"):
                return float(job["finished_at"])
            time.sleep(0.003)

    # -- (e): peak RSS with 10 000 queued tasks ------------------------------------------------

    def memory(self) -> None:
        results = []
        for depth in self.sizes.memory_depths:
            results.append(self._memory_at(depth))
            self.log(f"  memory  depth {depth}: {results[-1]}")
        self.facts["memory"] = results

    def _memory_at(self, depth: int) -> dict[str, Any]:
        """A fresh coordinator queues `depth` tasks with no worker; then a worker joins and
        drains them. Peak RSS of both while the queue is that deep."""
        ours = Ours(self.work / f"memory-{depth}", worker_name="mem")
        ours.start(worker=False)
        try:
            queued = {"max": 0}
            with RssSampler({"coordinator": ours.coordinator}) as publishing:
                jobs = [ours.submit("sleep", {"seconds": 0}, 1000) for _ in range(depth // 1000)]
                time.sleep(1)
                queued["max"] = int(ours.http.get("/queue_size").json()["pending_tasks"])
            t0 = time.time()
            with RssSampler({"coordinator": ours.coordinator, "worker": ours.worker}) as draining:
                ours.start_worker()
                end = ours.wait_jobs(jobs, poll_s=0.5)
            return {
                "depth": depth,
                "queued": queued["max"],
                "coordinator_publishing_mb": publishing.peak["coordinator"] / 2**20,
                "coordinator_mb": max(publishing.peak["coordinator"], draining.peak["coordinator"])
                / 2**20,
                "worker_mb": draining.peak["worker"] / 2**20,
                "worker_pss_mb": draining.peak_pss["worker"] / 2**20,
                "drain_rate": depth / (end - t0),
            }
        finally:
            ours.stop()

    # -- (f): bytes through the broker per task -------------------------------------------------

    def _count_broker_bytes(self, system: str, body: Callable[[], Run]) -> None:
        if system == "ours":
            ports = amqp_ports(self.ours.coordinator() + self.ours.worker())
        else:
            ports = amqp_ports([*self.celery.worker(), _self_process()])
        before = broker_octets()
        run = body()
        after = broker_octets()
        total = 0
        for port in ports:
            if port in before and port in after:
                total += sum(after[port]) - sum(before[port])
        self.facts.setdefault("broker_bytes", {})[system] = {
            "tasks": run.tasks,
            "bytes": total,
            "per_task": total / run.tasks,
        }

    def message_sizes(self) -> None:
        ref = InputRef(sha256="0" * 64, size=len(self.photo))
        image = TaskMessage(
            task_id="a" * 32, job_id="b" * 32, type="image", ops=workload.GRAY_OPS, input=ref
        )
        sleep = TaskMessage(
            task_id="a" * 32, job_id="b" * 32, type="sleep", params={"seconds": 0.0}
        )
        from sd_coordinator.transport import body as _body

        self.facts["message_body"] = {"image": len(_body(image)), "sleep": len(_body(sleep))}

    # -- pixels ----------------------------------------------------------------------------------

    def _our_first_result(self) -> bytes:
        job = self.ours.job(self._last_job)
        return self.ours.result(job["tasks"][0]["result"])

    def _check_pixels(self, figure: str, reference: str, others: dict[str, Any]) -> None:
        same = {
            name: workload.same_pixels(Path(reference), other) for name, other in others.items()
        }
        self.facts.setdefault("pixels", {})[figure] = same
        self.log(f"  {figure}: identical pixels to the bare pool: {same}")

    def save(self, path: Path) -> None:
        path.write_text(
            json.dumps({"runs": [asdict(r) for r in self.runs], "facts": self.facts}, indent=1)
        )


def _self_process() -> Any:
    import psutil

    return psutil.Process(os.getpid())


async def _broker_round_trip(n: int) -> float:
    """The broker alone: n persistent messages published with confirms into a quorum queue
    while one consumer acks them (prefetch 256); aio-pika on both ends, no work."""
    queue_name = unique_queue("brokerbench")
    url = BROKER.url
    pub = await aio_pika.connect(url)
    sub = await aio_pika.connect(url)
    try:
        pub_channel = await pub.channel(publisher_confirms=True)
        sub_channel = await sub.channel()
        await sub_channel.set_qos(prefetch_count=256)
        queue = await sub_channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        done = asyncio.Event()
        seen = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            await message.ack()
            seen += 1
            if seen >= n:
                done.set()

        tag = await queue.consume(on_message)
        body = b'{"v":1,"task_id":"' + b"a" * 32 + b'","type":"sleep","params":{"seconds":0}}'
        t0 = time.perf_counter()
        for start in range(0, n, 1000):
            await asyncio.gather(
                *(
                    pub_channel.default_exchange.publish(
                        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=queue_name,
                    )
                    for _ in range(min(1000, n - start))
                )
            )
        await done.wait()
        elapsed = time.perf_counter() - t0
        await queue.cancel(tag)
        await sub_channel.queue_delete(queue_name)
        return elapsed
    finally:
        await pub.close()
        await sub.close()
