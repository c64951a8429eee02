"""sd-academic: the academic records service (profesores, grupos) on the cluster's RabbitMQ."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from sd_academic.runtime import AcademicServer
from sd_academic.topology import db_path
from sd_common.cli import check_data_dir, check_database, fail, load_settings, setup_logging
from sd_common.settings import Settings
from sd_common.topology import BrokerUnavailable, broker_display, check_broker
from sd_common.version import VERSION
from sd_worker.stop_signals import stop_signals

log = logging.getLogger("sd.academic")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sd-academic",
        description="Sistema Distribuido academic service: owns the profesores and grupos "
        "(SQLite in DATA_DIR, or ACADEMIC_DB), answers the coordinator's commands over "
        "RabbitMQ (ACADEMIC_QUEUE) and publishes every change on the ACADEMIC_EXCHANGE topic "
        "exchange. Several may run at once on the same database. Settings come from the "
        "environment and .env (see .env.example); flags override them.",
    )
    parser.add_argument("--rabbit-host", help="RabbitMQ host (RABBIT_HOST)")
    parser.add_argument("--data-dir", type=Path, help="directory of the database (DATA_DIR)")
    parser.add_argument("--db", type=Path, help="the SQLite file itself (ACADEMIC_DB)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    return parser.parse_args(argv)


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; the first signal finishes running commands, a second exits."""
    server = AcademicServer(settings)
    stop = asyncio.Event()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            raise SystemExit(1)
        log.info("stopping: answering the commands in flight (signal again to stop at once)")
        stop.set()

    with stop_signals(on_signal, use_loop=not settings.portable_runtime):
        try:
            await server.start()
            log.info("sd-academic ready: %s on %s", db_path(settings), broker_display(settings))
            await stop.wait()
        finally:
            await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the sd-academic console script."""
    args = parse_args(argv)
    setup_logging(args.verbose)
    settings = load_settings(
        rabbit_host=args.rabbit_host, data_dir=args.data_dir, academic_db=args.db
    )
    if settings.rabbit_host is None:
        fail(
            "RABBIT_HOST is not set: sd-academic answers over RabbitMQ. On one machine, "
            "sd-coordinator alone already runs the academic service in its process."
        )
    check_data_dir(
        db_path(settings).parent, "set DATA_DIR, --data-dir or --db", "the database's folder"
    )
    check_database(db_path(settings), "the academic records' database")
    try:
        asyncio.run(check_broker(settings, work_queue=False))
        asyncio.run(serve(settings))
    except KeyboardInterrupt:
        pass
    except BrokerUnavailable as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
