"""Fixtures shared by every suite: a real broker, unique queues, and clusters of processes."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.broker import delete_queues_sync, unique_queue
from support.cluster import Cluster


def _broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def rabbitmq() -> None:
    """The machine's RabbitMQ on 127.0.0.1:5672, started if it is not running."""
    if not _broker_up():
        subprocess.run(["rabbitmq-server", "-detached"], check=False)
        deadline = time.monotonic() + 60
        while not _broker_up():
            if time.monotonic() > deadline:
                pytest.fail("RabbitMQ is not running on 127.0.0.1:5672 and did not start")
            time.sleep(1)


@pytest.fixture
def queue_name(rabbitmq: None) -> Iterator[str]:
    """A unique work queue for this test, deleted (with its dead letters) afterwards."""
    name = unique_queue()
    yield name
    delete_queues_sync(name)


@pytest.fixture
def cluster(tmp_path: Path, queue_name: str) -> Iterator[Cluster]:
    """Processes on the real broker; the test starts the coordinator and workers it needs."""
    c = Cluster(tmp_path, queue=queue_name)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def embedded_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A coordinator in embedded mode (no RABBIT_HOST)."""
    c = Cluster(tmp_path, queue=None)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs: a DATA_DIR that fills up (root only; unmounted afterwards)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root is needed): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
