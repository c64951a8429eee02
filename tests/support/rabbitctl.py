"""Stopping and starting the machine's RabbitMQ application for fault tests."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

HOST, PORT = "127.0.0.1", 5672
START_TIMEOUT_S = 120


def port_open(host: str = HOST, port: int = PORT) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _rabbitmqctl(*args: str, timeout_s: float = START_TIMEOUT_S) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=timeout_s)


def start_app() -> None:
    """`rabbitmqctl start_app`, then wait until the node is booted and port 5672 accepts."""
    _rabbitmqctl("start_app")
    _rabbitmqctl("await_startup")
    deadline = time.monotonic() + START_TIMEOUT_S
    while not port_open():
        if time.monotonic() > deadline:
            raise RuntimeError(f"RabbitMQ did not accept connections on {HOST}:{PORT} again")
        time.sleep(0.2)


@contextmanager
def rabbitmq_stopped() -> Iterator[None]:
    """Stop the RabbitMQ application (the Erlang node stays up) and start it again on exit,
    whatever happens inside: other tests on this machine share the broker."""
    try:
        _rabbitmqctl("stop_app")
        yield
    finally:
        start_app()


def close_connections_named(name: str) -> int:
    """Close, from the broker's side, every connection whose client named itself `name` (as a
    network cut or an operator would); returns how many were closed."""
    listing = subprocess.run(
        ["rabbitmqctl", "list_connections", "pid", "client_properties", "-q", "--no-table-headers"],
        check=True,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    ).stdout
    pids = [
        line.split("\t", 1)[0]
        for line in listing.splitlines()
        if f'{{"connection_name","{name}"}}' in line
    ]
    for pid in pids:
        _rabbitmqctl("close_connection", pid, "closed by a test")
    return len(pids)
