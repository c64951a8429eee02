"""sd-worker: run tasks from the cluster's RabbitMQ queue on this node."""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from sd_common.cli import (
    check_data_dir,
    check_python,
    fail,
    load_settings,
    settle_heap,
    setup_logging,
)
from sd_common.settings import Settings
from sd_common.tasks import load_task_modules
from sd_common.topology import BrokerUnavailable, broker_display, check_broker
from sd_common.version import VERSION
from sd_worker.executor import PoolUnavailable
from sd_worker.stop_signals import STOP_SIGNALS, stop_signals
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
        "--async",
        dest="use_async",
        action="store_true",
        help="asyncio worker with aio-pika consumers (the only mode; accepted for the seed's "
        "command line)",
    )
    parser.add_argument("--name", help="worker name on the dashboard (NODE_NAME; default hostname)")
    parser.add_argument("--coordinator", help="coordinator IP (COORDINATOR_IP)")
    parser.add_argument("--port", type=int, help="coordinator port (COORDINATOR_PORT)")
    parser.add_argument("--rabbit-host", help="RabbitMQ host (RABBIT_HOST)")
    parser.add_argument("--cpu-limit", type=float, help="pause consuming above this CPU %%")
    parser.add_argument(
        "--check",
        action="store_true",
        help="test every hop this worker needs (names, TCP, RabbitMQ login and queue, the "
        "coordinator, token, clock, how it sees this node), one line each with its fix; exit 1 "
        "if any fails",
    )
    parser.add_argument(
        "--portable",
        action="store_true",
        help="run as on Windows and macOS (PORTABLE_RUNTIME=true): portable process pool, "
        "spawn, stop signals through signal.signal, no uvloop",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    return parser.parse_args(argv)


class Lifecycle:
    """The worker's life from the broker check to its exit. A stop signal during start-up ends
    it where it is (anything already delivered goes back to the queue); once consuming, the first
    signal drains and the second stops at once. Every way ends with one line and `run()`
    returning."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker: AsyncWorker | None = None
        self.phase = "start-up"
        self.signals = 0
        self._starting: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()
        self._finished = False

    def on_signal(self) -> None:
        """A stop signal (called on the loop)."""
        self.signals += 1
        starting = self._starting
        if starting is None or not starting.done() or starting.cancelled():
            if starting is not None:
                starting.cancel()
            return
        if self.worker is None or self._finished:
            return
        if self.signals == 1:
            log.info("stopping: finishing tasks in flight (signal again to stop at once)")
            task = asyncio.create_task(self.worker.drain(), name="sd-worker-drain")
        else:
            log.info("stopping now: tasks in flight go back to the queue")
            task = asyncio.create_task(self.worker.stop(), name="sd-worker-stop")
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def run(self) -> None:
        """Start, serve until stopped, stop; returns once everything is closed."""
        self._starting = asyncio.create_task(self._start(), name="sd-worker-start")
        try:
            await asyncio.wait({self._starting})
            if self._starting.cancelled():
                phase = self.worker.phase if self.worker is not None else self.phase
                log.info(
                    "worker %s stopped during %s, before start-up was complete",
                    self.settings.node_name,
                    phase,
                )
                return
            self._starting.result()  # start-up's own error, if any
            assert self.worker is not None
            await self.worker.stopped()
        finally:
            self._finished = True
            if not self._starting.done():
                self._starting.cancel()
                await asyncio.wait({self._starting})
            if self.worker is not None:
                await self.worker.stop()
        log.info("worker %s stopped", self.settings.node_name)

    async def _start(self) -> None:
        if self.signals:  # a signal before the loop ran this task
            raise asyncio.CancelledError
        self.phase = "the RabbitMQ check"
        log.info("checking RabbitMQ at %s", broker_display(self.settings))
        await check_broker(self.settings)
        settle_heap()
        self.worker = AsyncWorker(self.settings)
        await self.worker.start()


async def serve(settings: Settings) -> None:
    """Run the worker with stop signals handled on this loop until it has stopped."""
    lifecycle = Lifecycle(settings)
    use_loop = not settings.portable_runtime and sys.platform != "win32"
    try:
        with stop_signals(lifecycle.on_signal, use_loop=use_loop) as how:
            loop = type(asyncio.get_running_loop())
            log.info(
                "Python %s on %s; event loop %s.%s; stop signals through %s",
                platform.python_version(),
                platform.platform(terse=True),
                loop.__module__.split(".")[0],
                loop.__name__,
                how,
            )
            await lifecycle.run()
    finally:
        # Stopped: a late signal has nothing left to stop while the process exits.
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def run_loop(main: Coroutine[Any, Any, None], *, portable: bool = False) -> None:
    """Run the worker on uvloop where it is installed (it comes with uvicorn[standard] on Linux
    and macOS, not on Windows), as the coordinator does: each delivery, HTTP post and pool
    result costs less CPU on it. `portable` keeps asyncio's own loop, as on Windows."""
    try:
        if portable:
            raise ImportError("PORTABLE_RUNTIME")
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the sd-worker console script."""
    # Until the loop takes them over (and after), a stop signal ends the process as Ctrl-C
    # does: KeyboardInterrupt, caught below.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.default_int_handler)
    args = parse_args(argv)
    setup_logging(args.verbose)
    try:
        check_python()
        settings = load_settings(
            node_name=args.name,
            coordinator_ip=args.coordinator,
            coordinator_port=args.port,
            rabbit_host=args.rabbit_host,
            cpu_limit=args.cpu_limit,
            portable_runtime=True if args.portable else None,
        )
        if args.check:
            from sd_worker.check import run_check

            raise SystemExit(run_check(settings))
        if settings.rabbit_host is None:
            fail(
                "RABBIT_HOST is not set: a worker needs the cluster's RabbitMQ. On one machine, "
                "sd-coordinator alone already runs a local worker."
            )
        check_data_dir(settings.data_dir)  # the worker's input cache lives there
        load_task_modules(settings.task_modules)
        run_loop(serve(settings), portable=settings.portable_runtime)
    except KeyboardInterrupt:
        log.info("sd-worker stopped")
    except (BrokerUnavailable, PoolUnavailable) as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
