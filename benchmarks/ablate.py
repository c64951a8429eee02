"""sd-worker or sd-coordinator with one optimisation undone, for the report's "what each
optimisation bought" (measured side by side with the real programs in the same run).

    python -m benchmarks.ablate VARIANT worker --async --name NAME
    python -m benchmarks.ablate VARIANT coordinator

Each variant puts back the code the optimisation replaced, verbatim in spirit and kept here,
never in src/: the shipped programs always run with every optimisation.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Request  # module level: FastAPI resolves the annotation from here


def _no_shared_storage() -> None:
    from sd_worker.shared import SharedStorage

    SharedStorage.probe = classmethod(lambda cls, offer: None)  # type: ignore[method-assign, assignment]


def results_over_http() -> None:
    """Before: a worker on the coordinator's machine sent every result over HTTP and fetched
    inputs into its own cache, as a remote one does (SHARED_STORAGE=off)."""
    _no_shared_storage()


def per_task_result_posts() -> None:
    """Before: one POST per result (a body of one frame), sent as soon as it is ready
    (results over HTTP, the only path this applies to)."""
    from sd_common import result_frames
    from sd_common.messages import IngestAnswer
    from sd_worker.client import FRAMES_TYPE, CoordinatorClient, CoordinatorRejected

    _no_shared_storage()

    async def post_image(
        self: CoordinatorClient, task_id: str, worker: str, png: bytes, duration_s: float = 0
    ) -> IngestAnswer:
        header = result_frames.ResultHeader(
            task_id=task_id, worker=worker, size=len(png), duration_s=duration_s
        )
        body = result_frames.encode([(header, png)])
        answer = await self.call("POST", "/results", data=body, headers=FRAMES_TYPE)
        (one,) = answer["answers"]
        if one.get("error"):
            raise CoordinatorRejected(one["status"], one["error"])
        return IngestAnswer.model_validate(one)

    CoordinatorClient.post_image = post_image  # type: ignore[method-assign]


def no_linger() -> None:
    """Before: a batch left as soon as the previous request returned, however small."""
    from sd_worker import client

    client.LINGER_S = 0


def input_bytes_to_pool() -> None:
    """Before: the cached input's bytes were pickled through the pool's pipe with each task
    (results over HTTP, the only path this applies to)."""
    import time

    from sd_common.images import ImageRejected
    from sd_common.messages import TaskMessage
    from sd_common.pipeline import PipelineError
    from sd_worker import processing
    from sd_worker.ops import process_image

    _no_shared_storage()

    async def run_image(
        self: processing.TaskProcessor, message: TaskMessage, started: float
    ) -> None:
        assert message.input is not None
        path = await self._input_path(message.input.sha256, None)
        data = await asyncio.to_thread(path.read_bytes)
        s = self.settings
        try:
            png = await self.executor.run(
                process_image, data, message.ops, s.png_compress_level, s.max_image_pixels
            )
        except (ImageRejected, PipelineError) as exc:
            raise processing.TaskFailed(str(exc)) from exc
        duration_s = time.perf_counter() - started
        await self.link.post_image(message.task_id, self.name, png, duration_s)

    processing.TaskProcessor._run_image = run_image  # type: ignore[method-assign]


def acks_one_by_one() -> None:
    """Before: each message acked in a frame of its own as soon as its outcome was stored."""
    from aio_pika.abc import AbstractIncomingMessage

    from sd_worker.acks import AckCoalescer

    async def ack(self: AckCoalescer, message: AbstractIncomingMessage) -> None:
        await message.ack()

    AckCoalescer.ack = ack  # type: ignore[method-assign, assignment]


def thread_driven_pool() -> None:
    """Before: concurrent.futures.ProcessPoolExecutor (a manager thread and a feeder thread
    between the event loop and the pool processes)."""
    from concurrent.futures import ProcessPoolExecutor

    from sd_worker import executor

    class Adapter(ProcessPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            return asyncio.wrap_future(super().submit(fn, *args, **kwargs))

    def new_pool(
        self: executor.Executor, workers: int | None = None, *, respawn: bool = True
    ) -> Any:
        return Adapter(
            workers or self.workers,
            mp_context=self._context,
            initializer=executor.prepare_pool_process,
            initargs=(os.getpid(), self.pillow_blocks_max),
        )

    executor.Executor._new_pool = new_pool  # type: ignore[method-assign]


def asyncio_loop() -> None:
    """Before: the worker ran on asyncio's own event loop."""
    import sd_worker.__main__ as worker_main

    worker_main.run_loop = lambda main, **_: asyncio.run(main)


def working_every_change() -> None:
    """Before: POST /working whenever the current task changed (coalesced, never throttled)."""
    from sd_worker import reporting

    reporting.WORKING_INTERVAL_S = 0


def tune_on_timer_only() -> None:
    """Before: prefetch re-evaluated every TUNE_INTERVAL_S only, even with every slot taken,
    from the queue's ready count alone (a queue a fast worker keeps empty looked idle) and the
    workers GET /workers shows alive."""
    from sd_worker import tuning
    from sd_worker.params import get_optimal_params

    async def run(self: tuning.Tuner) -> None:
        c = self.consumers
        while True:
            await asyncio.sleep(self.settings.tune_interval_s)
            try:
                pending = await self.client.queue_size()
                listing = await self.client.call("GET", "/workers", retry=False)
                live = sum(1 for node in listing.values() if node.get("alive"))
            except Exception:
                continue
            consumers, prefetch = get_optimal_params(pending, live, self.cores)
            if (consumers, prefetch) != (len(c.active), c.prefetch):
                await c.apply(consumers, prefetch)

    tuning.Tuner.run = run  # type: ignore[method-assign]


def outcomes_one_by_one() -> None:
    """Before: POST /results stored its outcomes one after another, a transaction each."""
    from sd_coordinator.ingest import Ingestor

    batched = Ingestor.outcomes

    async def outcomes(self: Ingestor, items: list[Any]) -> list[Any]:
        return [(await batched(self, [item]))[0] for item in items]

    Ingestor.outcomes = outcomes  # type: ignore[method-assign, assignment]


def publish_through_exchange() -> None:
    """Before: each message went through aio-pika's `Exchange.publish`, which holds the
    channel's lock until its frame is written: one event-loop turn per message. The setting
    RABBIT_PUBLIC_API, in the coordinator's process only."""
    os.environ["RABBIT_PUBLIC_API"] = "true"


def frames_ten_at_a_time() -> None:
    """Before: aiormq's own write queue of 10 frames: the publishes of a window waited for the
    connection's writer and left a few at a time."""
    from sd_coordinator import transport

    transport.use_fast_path = lambda: None


def consume_through_queue() -> None:
    """Before: deliveries through aio-pika's `Queue.consume`, which wraps each one in an
    `IncomingMessage` and runs the callback in a second task (and restores the consumer
    itself after a reconnection). The setting RABBIT_PUBLIC_API, in the worker's process."""
    os.environ["RABBIT_PUBLIC_API"] = "true"


def one_task_per_message() -> None:
    """Before: every task went in a message of its own, however large the job."""
    from sd_coordinator import transport

    transport.TASKS_PER_MESSAGE = 1


def pillow_blocks() -> None:
    """Before: each pool process kept 4 of Pillow's freed image memory blocks. Pillow resizes a
    kept block to the next image's size with `realloc`, which for a large block remaps it: the
    kernel faults its pages in again, task after task."""
    os.environ["PILLOW_BLOCKS_MAX"] = "4"


def services_in_threadpool() -> None:
    """Before: the `get_services` dependency was a plain function, which FastAPI runs in its
    thread pool: a thread hop on every request."""
    from fastapi import Depends

    from sd_coordinator.api import deps

    def get_services(request: Request) -> Any:
        return request.app.state.services

    deps.ServicesDep = Annotated[deps.Services, Depends(get_services)]  # type: ignore[assignment]


def default_gc() -> None:
    """Before: Python's own garbage collector settings in the coordinator and the worker
    (young collections every 700 objects, start-up objects scanned by every full one)."""
    from sd_common import cli

    cli.settle_heap = lambda: None


# The role is the program a variant changes: "worker", "coordinator", or "both".
VARIANTS: dict[str, tuple[str, Callable[[], None]]] = {
    "results over HTTP (no shared storage)": ("worker", results_over_http),
    "per-task result posts (over HTTP)": ("worker", per_task_result_posts),
    "input bytes pickled to the pool (over HTTP)": ("worker", input_bytes_to_pool),
    "acks one by one": ("worker", acks_one_by_one),
    "pool driven by threads (ProcessPoolExecutor)": ("worker", thread_driven_pool),
    "batches sent without lingering": ("worker", no_linger),
    "asyncio event loop in the worker": ("worker", asyncio_loop),
    "/working on every task change": ("worker", working_every_change),
    "prefetch tuned on a timer only": ("worker", tune_on_timer_only),
    "outcomes stored one by one": ("coordinator", outcomes_one_by_one),
    "services dependency in the thread pool": ("coordinator", services_in_threadpool),
    "published through aio-pika's Exchange.publish": ("coordinator", publish_through_exchange),
    "publishes queued 10 at a time (aiormq's FRAME_BUFFER_SIZE)": (
        "coordinator",
        frames_ten_at_a_time,
    ),
    "deliveries through aio-pika's Queue.consume": ("worker", consume_through_queue),
    "one task per message": ("coordinator", one_task_per_message),
    "Pillow keeps 4 freed image blocks (PILLOW_BLOCKS_MAX=4)": ("worker", pillow_blocks),
    "garbage collector at Python's defaults": ("both", default_gc),
}
SLUGS = {
    "".join(c for c in name.replace(" ", "-") if c.isalnum() or c == "-"): name for name in VARIANTS
}


def main() -> None:
    slug, role, *rest = sys.argv[1:]
    variant_role, patch = VARIANTS[SLUGS[slug]]
    if variant_role not in (role, "both"):
        raise SystemExit(f"{slug} changes the {variant_role}, not the {role}")
    patch()
    sys.argv = [f"sd-{role}", *rest]
    if role == "worker":
        from sd_worker.__main__ import main as worker_main

        worker_main()
    else:
        from sd_coordinator.__main__ import main as coordinator_main

        coordinator_main()


if __name__ == "__main__":
    main()
