"""sd-coordinator: the cluster's API, queue publisher, result store and dashboard."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import socket
import sys
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.main import STARTUP_FAILURE

from sd_academic.topology import db_path
from sd_common.cli import (
    check_data_dir,
    check_database,
    check_python,
    fail,
    load_settings,
    settle_heap,
    setup_logging,
)
from sd_common.settings import Settings
from sd_common.topology import BrokerUnavailable, check_broker
from sd_common.version import VERSION
from sd_coordinator.data_lock import DataDirInUse, lock_data_dir
from sd_coordinator.security import listens_beyond_loopback
from sd_coordinator.store import STORE_FILE

if TYPE_CHECKING:
    from sd_coordinator.lifespan import Services

log = logging.getLogger("sd.coordinator")


class Server(uvicorn.Server):
    """uvicorn's server that, told to stop, first ends the app's answers that last (dashboard
    event streams, results long polls): it waits for open requests before the app's own
    shutdown, and would otherwise wait out its graceful-shutdown timeout, then cancel them
    with an error and a traceback."""

    def __init__(self, config: uvicorn.Config, services: Services) -> None:
        super().__init__(config)
        self.services = services

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.services.request_stop()
        await super().shutdown(sockets)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sd-coordinator",
        description="Sistema Distribuido coordinator: accepts uploads and tasks, queues them on "
        "RabbitMQ (RABBIT_HOST) or, with RABBIT_HOST unset, on an embedded queue with a local "
        "worker; stores results; serves the dashboard and the API (/docs). Settings come from "
        "the environment and .env (see .env.example); flags override them.",
    )
    parser.add_argument(
        "--host",
        help="listen address (COORDINATOR_BIND; default 127.0.0.1 embedded, 0.0.0.0 with RabbitMQ)",
    )
    parser.add_argument("--port", type=int, help="listen port (COORDINATOR_PORT, default 8000)")
    parser.add_argument("--data-dir", help="where the database, inputs and results live (DATA_DIR)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    return parser.parse_args(argv)


def check_startup(settings: Settings) -> None:
    """Refuse configurations that would expose the cluster or cannot work."""
    if (
        not settings.embedded
        and listens_beyond_loopback(settings.bind_host)
        and not settings.cluster_token
    ):
        fail(
            f"RABBIT_HOST is set and the coordinator would listen on {settings.bind_host}, "
            "beyond this machine, without CLUSTER_TOKEN: anyone could post results. Set "
            "CLUSTER_TOKEN (the same on every worker), or --host 127.0.0.1."
        )
    check_data_dir(settings.data_dir, "set DATA_DIR or --data-dir")  # all it keeps is there
    if settings.academic_db is not None:  # the academic records run in this process
        check_data_dir(settings.academic_db.parent, "set ACADEMIC_DB", "ACADEMIC_DB's folder")
    check_database(settings.data_dir / STORE_FILE, "the coordinator's database")
    if settings.embedded or settings.academic_in_process:  # the academic service runs here
        check_database(db_path(settings), "the academic records' database")
    with socket.socket(socket.AF_INET6 if ":" in settings.bind_host else socket.AF_INET) as probe:
        if sys.platform != "win32":  # there it would let the probe bind over a listening port
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.bind_host, settings.coordinator_port))
        except OSError as exc:
            fail(
                f"cannot listen on {settings.bind_host}:{settings.coordinator_port} "
                f"({exc.strerror}); {_listen_fix(exc, settings.bind_host)}"
            )


def _listen_fix(exc: OSError, host: str) -> str:
    """What to do when the coordinator cannot listen where it was told."""
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"{host} is not an address of this machine: use one it has (its Tailscale IP, "
            "`tailscale ip -4`), 0.0.0.0 for all of them or 127.0.0.1, with --host."
        )
    if exc.errno == errno.EACCES:
        return "ports below 1024 need administrator rights: choose another with --port."
    return "is another sd-coordinator running? Choose another port with --port."


def exposure_warning(settings: Settings) -> str | None:
    """What to tell the user when the user API is open to the network, else None."""
    if not listens_beyond_loopback(settings.bind_host) or settings.api_token:
        return None
    return (
        f"the user API listens on {settings.bind_host}:{settings.coordinator_port}, beyond this "
        "machine, without API_TOKEN: anyone who reaches that port can submit work and read "
        "every job and result. Set API_TOKEN, or listen on 127.0.0.1 (--host); see "
        "docs/security.md"
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of the sd-coordinator console script."""
    args = parse_args(argv)
    setup_logging(args.verbose)
    check_python()
    settings = load_settings(
        coordinator_bind=args.host, coordinator_port=args.port, data_dir=args.data_dir
    )
    check_startup(settings)
    try:  # held until the process exits
        data_lock = lock_data_dir(settings.data_dir)
    except DataDirInUse as exc:
        holder = f" (pid {exc})" if str(exc) else ""
        fail(
            f"DATA_DIR {settings.data_dir} is in use by another sd-coordinator{holder}: stop "
            "it, or give this one a DATA_DIR of its own (--data-dir)."
        )
    if (warning := exposure_warning(settings)) is not None:
        log.warning(warning)
    if not settings.embedded:
        try:
            asyncio.run(check_broker(settings))
        except BrokerUnavailable as exc:
            fail(str(exc))
    from sd_coordinator.app import create_app

    app = create_app(settings)
    # A wildcard address is no place to browse to (and not a host name this coordinator answers).
    shown = settings.bind_host
    if not listens_beyond_loopback(shown) or shown in ("0.0.0.0", "::"):
        shown = "localhost"
    log.info(
        "dashboard and API on http://%s:%d (API docs at /docs)", shown, settings.coordinator_port
    )
    settle_heap()
    config = uvicorn.Config(
        app,
        host=settings.bind_host,
        port=settings.coordinator_port,
        log_level="warning",
        # uvloop where uvicorn finds it (not on Windows); PORTABLE_RUNTIME runs as Windows does.
        loop="asyncio" if settings.portable_runtime else "auto",
        timeout_graceful_shutdown=5,
    )
    server = Server(config, app.state.services)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    data_lock.close()  # stopped: DATA_DIR is free for the next coordinator
    if not server.started:  # as uvicorn.run: it could not start (the port taken, say)
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
