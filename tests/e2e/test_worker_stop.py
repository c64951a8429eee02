"""Stopping `sd-worker --async` at every phase of its life, as a terminal's Ctrl-C or a service
manager's stop would (the signal goes to the whole process group): each way ends with one
log line and exit code 0, never a traceback."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from support.cluster import Cluster, free_port

pytestmark = pytest.mark.e2e

TESTS_DIR = Path(__file__).resolve().parents[1]
# One signal, or a second one soon after the first (an impatient Ctrl-C, systemd's final kill
# would be SIGKILL and needs no test).
SIGNALS = [
    pytest.param((signal.SIGTERM,), id="sigterm"),
    pytest.param((signal.SIGINT, signal.SIGINT), id="ctrl-c-twice"),
]


def log_of(cluster: Cluster, name: str) -> str:
    return cluster.logs[name].read_text(errors="replace")


def wait_for_line(cluster: Cluster, name: str, text: str, timeout_s: float = 30) -> None:
    cluster.wait_until(lambda: text in log_of(cluster, name), timeout_s, f"{name} to log {text!r}")


def stop_with(cluster: Cluster, name: str, signals: tuple[int, ...]) -> int:
    """Send the signals to the worker's process group, 0.3 s apart; its exit code."""
    proc = cluster.procs[name]
    for sig in signals:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        time.sleep(0.3)
    return cluster.send_signal(name, 0, timeout_s=45) if proc.poll() is None else proc.returncode


def assert_stopped_cleanly(cluster: Cluster, name: str, code: int, last_words: str) -> None:
    log = log_of(cluster, name)
    assert code == 0, log
    for junk in ("Traceback", "ERROR", "Unclosed", "was destroyed", "Exception"):
        assert junk not in log, log
    last = log.strip().splitlines()[-1]
    assert "stopped" in last and last_words in last, log


@pytest.fixture
def silent_broker() -> Iterator[socket.socket]:
    """A listening socket that takes TCP connections and never answers AMQP (a broker that
    hangs)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(30)
        yield listener


@pytest.mark.parametrize("signals", SIGNALS)
def test_a_signal_during_the_broker_check_stops_cleanly(
    cluster: Cluster, silent_broker: socket.socket, signals: tuple[int, ...]
) -> None:
    cluster.launch_worker("hanging", RABBIT_PORT=str(silent_broker.getsockname()[1]))
    connection, _ = silent_broker.accept()  # the worker is waiting for the broker's greeting
    with connection:
        code = stop_with(cluster, "hanging", signals)
    assert_stopped_cleanly(cluster, "hanging", code, "during the RabbitMQ check")


@pytest.mark.parametrize("signals", SIGNALS)
def test_a_signal_while_the_coordinator_is_unreachable_stops_cleanly(
    cluster: Cluster, signals: tuple[int, ...]
) -> None:
    # The case: COORDINATOR_PORT points at nothing, the worker retries registering.
    cluster.launch_worker("lonely", COORDINATOR_PORT=str(free_port()))
    wait_for_line(cluster, "lonely", "unreachable")
    code = stop_with(cluster, "lonely", signals)
    assert_stopped_cleanly(cluster, "lonely", code, "during registration")


@pytest.mark.parametrize("signals", SIGNALS)
def test_a_signal_while_the_process_pool_starts_stops_cleanly(
    cluster: Cluster, signals: tuple[int, ...]
) -> None:
    cluster.start_coordinator()
    pythonpath = os.pathsep.join(p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH")) if p)
    cluster.launch_worker("slow", TASK_MODULES="support.slow_pool_start", PYTHONPATH=pythonpath)
    worker = psutil.Process(cluster.procs["slow"].pid)
    cluster.wait_until(lambda: worker.children(), 30, "the worker to start its pool")
    time.sleep(1)
    code = stop_with(cluster, "slow", signals)
    assert_stopped_cleanly(cluster, "slow", code, "during the process pool's start")
    assert cluster.worker("slow") == {}, "it registered after it was told to stop"


@pytest.fixture
def broker_once() -> Iterator[int]:
    """A port that forwards its first TCP connection to RabbitMQ (the worker's broker check)
    and holds every later one silent (the consuming connection waits for a greeting)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        held: list[socket.socket] = []

        def serve() -> None:
            first = True
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                if not first:
                    held.append(client)
                    continue
                first = False
                upstream = socket.create_connection(("127.0.0.1", 5672))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=pipe, args=(a, b), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        yield listener.getsockname()[1]
    for client in held:
        client.close()


def pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        sink.close()


@pytest.mark.parametrize("signals", SIGNALS)
def test_a_signal_while_connecting_to_rabbitmq_stops_cleanly(
    cluster: Cluster, broker_once: int, signals: tuple[int, ...]
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("connecting", RABBIT_PORT=str(broker_once))  # registered, not consuming
    time.sleep(0.5)
    code = stop_with(cluster, "connecting", signals)
    assert_stopped_cleanly(cluster, "connecting", code, "during the connection to RabbitMQ")


def test_a_signal_to_an_idle_consuming_worker_stops_it_at_once(cluster: Cluster) -> None:
    cluster.start_coordinator()
    cluster.start_worker("idle")
    # Registered is not yet consuming: a signal still connecting to RabbitMQ is another phase.
    cluster.wait_consuming("idle")
    asked = time.monotonic()
    code = stop_with(cluster, "idle", (signal.SIGTERM,))
    assert time.monotonic() - asked < 15
    assert_stopped_cleanly(cluster, "idle", code, "idle")


def test_a_second_signal_while_draining_stops_at_once_and_returns_the_tasks(
    cluster: Cluster,
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("busy")
    job = cluster.submit_task("sleep", {"seconds": 30}, copies=4)
    cluster.wait_until(
        lambda: cluster.worker("busy").get("status") == "busy",
        20,
        "the worker to take the sleep tasks",
    )
    asked = time.monotonic()
    code = stop_with(cluster, "busy", (signal.SIGINT, signal.SIGINT))
    assert time.monotonic() - asked < 15, "the second signal did not stop it at once"
    assert_stopped_cleanly(cluster, "busy", code, "busy")
    log = log_of(cluster, "busy")
    assert "draining" in log and "stopping now" in log
    assert cluster.job(job["job_id"])["done"] == 0
    with cluster.client() as client:  # nothing was lost: every task is back in the queue
        cluster.wait_until(
            lambda: client.get("/queue_size").json()["pending_tasks"] == 4,
            10,
            "the unfinished tasks to return to the queue",
        )


def test_a_draining_worker_returns_the_tasks_it_has_not_started(cluster: Cluster) -> None:
    # A worker holds its whole prefetch window, far more tasks than its pool runs at once. On
    # SIGTERM it finishes the running ones and hands the rest back at once, so a host that
    # leaves mid-job does not keep its share of the job to itself while it drains.
    cluster.env.update(
        TASK_MODULES="support.nap_tasks",
        PYTHONPATH=os.pathsep.join(p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH")) if p),
    )
    cluster.start_coordinator()
    cluster.start_worker("leaving")
    job_id = cluster.submit_task("pool_nap", {"seconds": 1.0}, copies=40)["job_id"]
    cluster.wait_until(
        lambda: cluster.worker("leaving").get("holding", 0) >= 20,
        30,
        "the worker to hold most of the job",
    )
    asked = time.monotonic()
    code = cluster.send_signal("leaving", signal.SIGTERM, timeout_s=45)
    drained_in = time.monotonic() - asked
    assert_stopped_cleanly(cluster, "leaving", code, "leaving")
    assert "not started returned to the queue" in log_of(cluster, "leaving")
    # Waiting for the 40 naps on its two pool processes would take ~20 s.
    assert drained_in < 10, drained_in
    done_before = cluster.job(job_id)["done"]
    assert done_before < 20, done_before

    cluster.start_worker("staying")
    job = cluster.wait_job(job_id, 120)
    assert (job["state"], job["done"], job["failed"]) == ("done", 40, 0), job
