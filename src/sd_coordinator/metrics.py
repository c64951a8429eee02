"""Prometheus metrics of one coordinator, in its own registry (served by GET /metrics).

Counters and the duration histogram are updated as outcomes are stored; the gauges (tasks by
state, queue depth, workers) are read from the store, the broker and the registry at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TASK_STATES = ("queued", "running", "done", "failed")
DURATION_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)


class ClusterCollector(Collector):
    """Gauges from a snapshot taken just before each scrape (`Metrics.render`)."""

    def __init__(self) -> None:
        self.tasks_by_state: Mapping[str, int] = {}
        self.queue_depth: int | None = None
        self.workers: Mapping[str, Mapping[str, Any]] = {}

    def collect(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily(
            "sd_tasks_in_state", "Tasks of all jobs by current state.", labels=["state"]
        )
        for state in TASK_STATES:
            by_state.add_metric([state], self.tasks_by_state.get(state, 0))
        yield by_state
        if self.queue_depth is not None:
            yield GaugeMetricFamily(
                "sd_queue_depth",
                "Ready messages waiting in the work queue.",
                value=self.queue_depth,
            )
        gauges = {
            "cpu": GaugeMetricFamily(
                "sd_worker_cpu_percent", "Worker node CPU use (%).", labels=["worker"]
            ),
            "ram": GaugeMetricFamily(
                "sd_worker_ram_percent", "Worker node RAM use (%).", labels=["worker"]
            ),
            "net": GaugeMetricFamily(
                "sd_worker_net_mbps", "Worker node network, MB/s in + out.", labels=["worker"]
            ),
            "alive": GaugeMetricFamily(
                "sd_worker_alive", "1 if the worker reported recently.", labels=["worker"]
            ),
            "consumers": GaugeMetricFamily(
                "sd_worker_consumers", "Worker's queue consumers.", labels=["worker"]
            ),
            "prefetch": GaugeMetricFamily(
                "sd_worker_prefetch", "Worker's prefetch per consumer.", labels=["worker"]
            ),
        }
        processed = CounterMetricFamily(
            "sd_worker_processed",
            "Tasks the worker completed since it started (as reported).",
            labels=["worker"],
        )
        failed = CounterMetricFamily(
            "sd_worker_failed",
            "Tasks the worker reported failed since it started.",
            labels=["worker"],
        )
        for name, worker in self.workers.items():
            for key, gauge in gauges.items():
                gauge.add_metric([name], float(worker.get(key) or 0))
            processed.add_metric([name], float(worker.get("processed") or 0))
            failed.add_metric([name], float(worker.get("failed") or 0))
        yield from gauges.values()
        yield processed
        yield failed


class Metrics:
    """The coordinator's metrics. A registry per instance: several apps never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tasks = Counter(
            "sd_tasks",
            "Tasks recorded by this coordinator since it started, by state reached "
            "(queued = submitted, done and failed = outcome stored).",
            ["state"],
            registry=self.registry,
        )
        for state in ("queued", "done", "failed"):
            self.tasks.labels(state)
        self.duration = Histogram(
            "sd_task_duration_seconds",
            "Time workers spent on a task, as they report it.",
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self.cluster = ClusterCollector()
        self.registry.register(self.cluster)

    def submitted(self, count: int) -> None:
        """`count` tasks were queued."""
        self.tasks.labels("queued").inc(count)

    def finished(self, *, failed: bool, duration_s: float | None) -> None:
        """A task's outcome was stored (once per task)."""
        self.tasks.labels("failed" if failed else "done").inc()
        if duration_s is not None and duration_s > 0:
            self.duration.observe(duration_s)

    def render(
        self,
        tasks_by_state: Mapping[str, int],
        queue_depth: int | None,
        workers: Mapping[str, Mapping[str, Any]],
    ) -> bytes:
        """The exposition text, with the gauges set from this snapshot."""
        self.cluster.tasks_by_state = tasks_by_state
        self.cluster.queue_depth = queue_depth
        self.cluster.workers = workers
        return generate_latest(self.registry)
