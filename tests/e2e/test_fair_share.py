"""The worker's fair share counts the workers that really consume the queue, follows a job
while it arrives, and looks at the cluster at a cost that does not grow with the cluster."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

import aio_pika
import pytest

from sd_worker.executor import pool_size
from sd_worker.params import MAX_PREFETCH, SHARE_HELD
from support.broker import AMQP_URL
from support.cluster import Cluster
from support.counting_proxy import CountingProxy
from support.nodes import NodesInThread, SimulatedNodes

pytestmark = pytest.mark.e2e

CPUS = pool_size()  # the workers' pool, one consumer per process


class HeldConsumers:
    """`count` consumers on the work queue, each holding one delivery unacked: what other
    workers consuming the queue look like to the broker (released, unacked, on exit)."""

    def __init__(self, queue: str, count: int) -> None:
        self.queue = queue
        self.count = count
        self._stop = threading.Event()
        self._up = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        connection = await aio_pika.connect_robust(AMQP_URL)
        async with connection:
            for _ in range(self.count):
                channel = await connection.channel()
                await channel.set_qos(prefetch_count=1)
                queue = await channel.get_queue(self.queue, ensure=False)
                await queue.consume(self._hold, no_ack=False)
            self._up.set()
            await asyncio.to_thread(self._stop.wait)

    async def _hold(self, message: Any) -> None:
        """Keep it: the consumer stays busy with it until the connection closes."""

    def __enter__(self) -> HeldConsumers:
        self._thread.start()
        assert self._up.wait(15), "the held consumers did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def sleep_job(cluster: Cluster, copies: int, seconds: float) -> str:
    with cluster.client() as client:
        answer = client.post(
            "/task", json={"type": "sleep", "payload": {"seconds": seconds}, "copies": copies}
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["job_id"])


def start_tuned_worker(cluster: Cluster, name: str, **env: str) -> None:
    cluster.start_worker(name, **env)
    cluster.wait_until(
        lambda: cluster.worker(name).get("consumers", 0) >= 1, 15, f"{name}'s first report"
    )


def test_paused_nodes_beside_a_worker_take_nothing_from_its_share(cluster: Cluster) -> None:
    cluster.start_coordinator()
    start_tuned_worker(cluster, "real", TUNE_INTERVAL_S="0.5")
    paused = SimulatedNodes.named(cluster.url, cluster.token, "lab-pc", 20, "paused")
    with NodesInThread(paused):
        cluster.wait_until(
            lambda: cluster.worker("lab-pc-019").get("alive") is True,
            15,
            "the paused lab PCs to report",
        )
        sleep_job(cluster, 1000, 30)
        # Alone with a long queue the worker takes the cap; paused PCs change nothing.
        cluster.wait_until(
            lambda: cluster.worker("real").get("prefetch") == MAX_PREFETCH,
            15,
            "the worker beside 20 paused PCs to take its whole share",
        )
        time.sleep(2)  # and it stays there: looks go on while the PCs keep reporting
        assert cluster.worker("real")["prefetch"] == MAX_PREFETCH
        assert cluster.worker("lab-pc-000")["status"] == "paused"


def test_workers_that_consume_share_the_queue_fairly(cluster: Cluster) -> None:
    cluster.start_coordinator()
    start_tuned_worker(cluster, "real", TUNE_INTERVAL_S="0.5")
    # Two more workers of the same size, consuming (and reporting as consuming ones do).
    others = SimulatedNodes.named(cluster.url, cluster.token, "peer", 2, "busy", cpus=CPUS)
    assert cluster.queue is not None
    with NodesInThread(others), HeldConsumers(cluster.queue, 2 * CPUS):
        cluster.wait_until(
            lambda: cluster.worker("peer-001").get("alive") is True,
            15,
            "the other workers to report",
        )
        sleep_job(cluster, 600, 30)
        # A third of 600 tasks (each sleeps long enough that none ends), the part of it held at
        # once, over its consumers; its first look may come while the job is being published.
        third = math.ceil(600 / 3 / SHARE_HELD / CPUS)
        cluster.wait_until(
            lambda: (
                0.9 * third <= cluster.worker("real").get("prefetch", 0) <= third + 1
                and cluster.worker("real").get("consumers") == CPUS
            ),
            15,
            "the worker to tune to a third of the queue",
        )
        time.sleep(1.5)
        prefetch = cluster.worker("real")["prefetch"]
    assert 0.9 * third <= prefetch <= third + 1, cluster.log_tail()


def test_a_job_arriving_bit_by_bit_is_followed_to_the_share_of_all_of_it(
    cluster: Cluster,
) -> None:
    cluster.start_coordinator()
    # Regular looks far apart: the arrival itself must bring the looks.
    start_tuned_worker(cluster, "real", TUNE_INTERVAL_S="10")
    others = SimulatedNodes.named(cluster.url, cluster.token, "peer", 1, "busy", cpus=CPUS)
    assert cluster.queue is not None
    with NodesInThread(others), HeldConsumers(cluster.queue, CPUS):
        cluster.wait_until(
            lambda: cluster.worker("peer-000").get("alive") is True,
            15,
            "the other worker to report",
        )
        jobs = []
        for _ in range(6):
            jobs.append(sleep_job(cluster, 50, 30))
            time.sleep(0.7)
        arrived = time.monotonic()

        def expected() -> int:
            done = sum(cluster.job(j)["done"] for j in jobs)
            share = math.ceil((300 - done - CPUS) / 2)
            return min(MAX_PREFETCH, math.ceil(share / SHARE_HELD / CPUS))

        def reached() -> bool:
            return bool(cluster.worker("real").get("prefetch", 0) >= 0.8 * expected())

        cluster.wait_until(reached, 2.5, "the prefetch to reach the share of the whole job")
    assert time.monotonic() - arrived < 3


def test_a_workers_look_at_the_cluster_costs_the_same_with_300_nodes(cluster: Cluster) -> None:
    cluster.start_coordinator()
    with CountingProxy(cluster.port) as proxy:
        start_tuned_worker(cluster, "real", TUNE_INTERVAL_S="0.5", COORDINATOR_PORT=str(proxy.port))
        time.sleep(2)
        before = proxy.downstream
        time.sleep(4)
        few = proxy.downstream - before

        many = SimulatedNodes.named(cluster.url, cluster.token, "lab-pc-with-a-long-name", 300)
        many.register_blocking()
        with cluster.client() as client:
            assert len(client.get("/workers").json()) == 301
        before = proxy.downstream
        time.sleep(4)
        lots = proxy.downstream - before
    # Four seconds of reports and looks: the same bytes whether 1 or 301 nodes are known.
    assert lots <= 2 * few + 4096, (few, lots)
