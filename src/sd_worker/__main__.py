"""sd-worker: run tasks from the cluster's RabbitMQ queue on this node."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Coroutine
from typing import Any

from sd_common.cli import fail, load_settings, settle_heap, setup_logging
from sd_common.settings import Settings
from sd_common.tasks import load_task_modules
from sd_common.topology import BrokerUnavailable, check_broker
from sd_worker.worker_async import AsyncWorker

log = logging.getLogger("sd.worker")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sd-worker",
        description="Sistema Distribuido worker: consumes tasks from RabbitMQ (RABBIT_HOST) and "
        "runs them in a process pool, reporting to the coordinator (COORDINATOR_IP). Settings "
        "come from the environment and .env (see .env.example); flags override them.",
    )
    parser.add_argument(
        "--async", dest="use_async", action="store_true",
        help="asyncio worker with aio-pika consumers (the only mode; accepted for the seed's "
        "command line)",
    )  # fmt: skip
    parser.add_argument("--name", help="worker name on the dashboard (NODE_NAME; default hostname)")
    parser.add_argument("--coordinator", help="coordinator IP (COORDINATOR_IP)")
    parser.add_argument("--port", type=int, help="coordinator port (COORDINATOR_PORT)")
    parser.add_argument("--rabbit-host", help="RabbitMQ host (RABBIT_HOST)")
    parser.add_argument("--cpu-limit", type=float, help="pause consuming above this CPU %%")
    parser.add_argument(
        "--check", action="store_true",
        help="test every hop this worker needs (names, TCP, RabbitMQ login and queue, the "
        "coordinator, token, clock, how it sees this node), one line each with its fix; exit 1 "
        "if any fails",
    )  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


async def serve(settings: Settings) -> None:
    worker = AsyncWorker(settings)
    loop = asyncio.get_running_loop()
    signals = 0
    stopping: set[asyncio.Task[None]] = set()

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("stopping: finishing tasks in flight (signal again to stop at once)")
            task = asyncio.create_task(worker.drain(), name="sd-worker-drain")
        else:
            task = asyncio.create_task(worker.stop(), name="sd-worker-stop")
        stopping.add(task)
        task.add_done_callback(stopping.discard)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        await worker.run()
    finally:
        await worker.stop()


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run the worker on uvloop when it is installed (it comes with uvicorn[standard]), as the
    coordinator does: each delivery, HTTP post and pool result costs less CPU on it."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the sd-worker console script."""
    args = parse_args(argv)
    setup_logging(args.verbose)
    settings = load_settings(
        node_name=args.name, coordinator_ip=args.coordinator, coordinator_port=args.port,
        rabbit_host=args.rabbit_host, cpu_limit=args.cpu_limit,
    )  # fmt: skip
    if args.check:
        from sd_worker.check import run_check

        raise SystemExit(run_check(settings))
    if settings.rabbit_host is None:
        fail(
            "RABBIT_HOST is not set: a worker needs the cluster's RabbitMQ. On one machine, "
            "sd-coordinator alone already runs a local worker."
        )
    load_task_modules(settings.task_modules)
    try:
        asyncio.run(check_broker(settings))
        settle_heap()
        run_loop(serve(settings))
    except KeyboardInterrupt:
        pass
    except BrokerUnavailable as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
