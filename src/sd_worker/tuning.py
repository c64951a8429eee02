"""Live tuning: when to look at the cluster, what to look at, and re-tuning from it; and the
CPU_LIMIT pause."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable

from sd_common import topology
from sd_common.messages import ReportAnswer
from sd_common.settings import Settings
from sd_worker.client import CoordinatorClient
from sd_worker.consumers import Consumers
from sd_worker.params import MAX_PREFETCH, consuming_workers, get_optimal_params, pending_tasks

log = logging.getLogger("sd.worker")

TUNE_MIN_GAP_S = 0.5
TUNE_RAISE_GAP_S = 0.1
QUEUE_PROBE_TIMEOUT_S = 2.0
# While a job arrives (a delivery of a job not seen lately, or a queue that grew since the last
# look) the worker looks every ARRIVAL_GAP_S, until ARRIVAL_WINDOW_S pass with no more growth:
# a job is published over a second or more, and a share of its first few dozen tasks would
# starve the pool until the next regular look.
ARRIVAL_GAP_S = 0.3
ARRIVAL_WINDOW_S = 2.0
RECENT_JOBS = 64
CONSUMERS_MEMORY_S = 1.5
STALE_REPORTS = 3  # a report answer older than this many intervals says nothing any more


class Tuner:
    """Re-evaluates `get_optimal_params` for `cores` pool processes and applies it to
    `consumers`: every TUNE_INTERVAL_S, at
    once when every prefetch slot is taken, and every ARRIVAL_GAP_S while a job arrives.

    A look at the cluster costs the same for 3 nodes or 300: the broker's counters of the
    work queue (ready messages, consumers: one round trip) and the tally of the other
    consuming workers that the coordinator sends back with each report."""

    def __init__(
        self,
        settings: Settings,
        cores: int,
        consumers: Consumers,
        client: CoordinatorClient,
        in_flight: Callable[[], int],
        per_message: Callable[[], int] = lambda: 1,
    ) -> None:
        self.settings = settings
        self.cores = cores
        self.consumers = consumers
        self.client = client
        self.in_flight = in_flight
        # Tasks in the latest message: prefetch counts messages, the parameters count tasks.
        self.per_message = per_message
        self._look_soon = asyncio.Event()
        self._saturated = False
        self._new_job = False
        self._arriving_until = 0.0
        self._last_pending = 0
        self._recent_jobs: OrderedDict[str, None] = OrderedDict()
        self._heard: tuple[float, int] | None = None  # (when, other consuming workers' cores)
        self._consumers_seen: deque[tuple[float, int]] = deque()
        self._unfinished: tuple[float, int] | None = None  # (when, tasks not yet finished)

    def delivered(self, job_id: str, in_flight: int) -> None:
        """A task of `job_id` arrived with `in_flight` tasks held: look soon if its job is new
        here or every slot is taken."""
        c = self.consumers
        if job_id not in self._recent_jobs:
            self._recent_jobs[job_id] = None
            if len(self._recent_jobs) > RECENT_JOBS:
                self._recent_jobs.popitem(last=False)
            self._arriving_until = asyncio.get_running_loop().time() + ARRIVAL_WINDOW_S
            self._new_job = True
            self._look_soon.set()
        else:
            self._recent_jobs.move_to_end(job_id)
        slots = c.prefetch * max(1, self.per_message())
        if slots < MAX_PREFETCH and in_flight >= slots * len(c.active):
            self._saturated = True
            self._look_soon.set()

    async def look(self) -> tuple[int, float]:
        """`(pending, live_workers)` for `get_optimal_params`, from the broker."""
        channel = self.consumers.channel()
        if channel is None:
            return await self.client.queue_size() + self.in_flight(), 1.0
        s = self.settings
        async with asyncio.timeout(QUEUE_PROBE_TIMEOUT_S):
            counts = await topology.queue_counts(channel, s.queue_name, s.delivery_limit)
        pending = pending_tasks(
            counts.ready, self.per_message(), self.in_flight(), self._heard_unfinished()
        )
        live = consuming_workers(
            self.cores,
            other_consumers=self._other_consumers(counts.consumers - self.consumers.on_broker()),
            other_cpus=self._other_cpus(),
        )
        return pending, live

    def _other_consumers(self, now_seen: int) -> int:
        """The most consumers of other workers the broker counted over the last
        CONSUMERS_MEMORY_S: a worker that re-tunes cancels its consumers and consumes again,
        and a look between the two would take it for gone (at a job's start every worker
        re-tunes at once, and one that saw the others so was alone would take the cap)."""
        now = asyncio.get_running_loop().time()
        self._consumers_seen.append((now, now_seen))
        while self._consumers_seen and now - self._consumers_seen[0][0] > CONSUMERS_MEMORY_S:
            self._consumers_seen.popleft()
        return max(n for _, n in self._consumers_seen)

    def heard(self, answer: ReportAnswer) -> None:
        """The coordinator's answer to a report: the other workers consuming and their cores,
        and the tasks not yet finished (an older coordinator sends neither)."""
        now = asyncio.get_running_loop().time()
        others = answer.others_consuming
        if others is not None and isinstance(others.get("cpus"), int):
            self._heard = (now, others["cpus"])
        if answer.unfinished_tasks is not None:
            self._unfinished = (now, answer.unfinished_tasks)

    def _fresh(self, at: float) -> bool:
        stale_s = STALE_REPORTS * self.settings.report_interval_s
        return asyncio.get_running_loop().time() - at <= stale_s

    def _heard_unfinished(self) -> int:
        if self._unfinished is None or not self._fresh(self._unfinished[0]):
            return 0
        return self._unfinished[1]

    def _other_cpus(self) -> int | None:
        """The cores of the other consuming workers, as the last recent report answer said."""
        if self._heard is None or not self._fresh(self._heard[0]):
            return None
        return self._heard[1]

    async def run(self) -> None:
        """The tuning loop (until cancelled)."""
        c = self.consumers
        loop = asyncio.get_running_loop()
        next_look = 0.0
        while True:
            arriving = loop.time() < self._arriving_until
            timeout = ARRIVAL_GAP_S if arriving else self.settings.tune_interval_s
            try:
                await asyncio.wait_for(self._look_soon.wait(), timeout)
            except TimeoutError:
                pass
            if self._new_job:  # news worth a look now, whatever the last look decided
                next_look = min(next_look, loop.time() + ARRIVAL_GAP_S)
            if (delay := next_look - loop.time()) > 0:
                await asyncio.sleep(delay)
            saturated, self._saturated = self._saturated, False
            self._new_job = False
            self._look_soon.clear()
            try:
                pending, live = await self.look()
            except Exception as exc:
                log.debug("could not read the queue's counters to tune: %s", exc)
                continue
            if pending > self._last_pending:
                # The queue grew: a job is arriving (or more of it); follow it closely.
                self._arriving_until = max(self._arriving_until, loop.time() + ARRIVAL_WINDOW_S)
            self._last_pending = pending
            arriving = loop.time() < self._arriving_until
            consumers, prefetch = get_optimal_params(pending, live, self.cores)
            prefetch = max(1, prefetch // max(1, self.per_message()))
            if (consumers, prefetch) != (len(c.active), c.prefetch) or c.start_failed:
                log.info(
                    "tuning: pending=%d consuming_workers=%.2f -> consumers=%d prefetch=%d",
                    pending,
                    live,
                    consumers,
                    prefetch,
                )
                # Once raised, full slots may raise again soon; shrinking waits longer, so
                # consumers do not churn.
                raised = prefetch > c.prefetch
                await c.apply(consumers, prefetch)
                next_look = loop.time() + (TUNE_RAISE_GAP_S if raised else TUNE_MIN_GAP_S)
            elif saturated and not arriving:
                # Full slots that a re-tune leaves as they are (the queue is all here already)
                # say nothing new: the next look waits for the regular interval.
                next_look = loop.time() + self.settings.tune_interval_s
            elif arriving:
                next_look = loop.time() + ARRIVAL_GAP_S
            else:
                # A timer look that changed nothing (an idle worker): a job that fills the
                # slots next is new news, looked at at once (each message held back at idle
                # prefetch costs the pool a round trip to the coordinator).
                next_look = loop.time()


class CpuPause:
    """CPU_LIMIT: consuming pauses while this node's CPU is above it and resumes once under;
    `sampled(cpu)` with each new sample."""

    def __init__(self, cpu_limit: float, consumers: Consumers) -> None:
        self.cpu_limit = cpu_limit
        self.consumers = consumers

    async def sampled(self, cpu: float) -> None:
        paused = cpu > self.cpu_limit
        if await self.consumers.set_paused(paused):
            how = ("above", "paused") if paused else ("back under", "resumed")
            log.info("CPU %s CPU_LIMIT=%.0f%%: %s consuming", how[0], self.cpu_limit, how[1])
