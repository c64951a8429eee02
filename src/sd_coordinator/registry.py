"""Live workers: registration, reports, current task and liveness."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sd_common.messages import WorkerHello, Working
from sd_coordinator.errors import Conflict, NotFound

STALE_AFTER_INTERVALS = 3
# Statuses of a live worker that takes tasks from the queue (paused and draining ones do not).
CONSUMING = frozenset({"free", "busy"})
TALLY_MAX_AGE_S = 0.25
RATE_SMOOTHING = 0.3  # weight of the newest report in a worker's tasks/s
# Kept out of GET /workers: the held ids are the rescuer's business, not the dashboard's.
PRIVATE_FIELDS = ("session", "held_since", "reported_at", "backup_queue")


@dataclass
class WorkerState:
    """What the coordinator knows of one worker (GET /workers, the seed's shape plus more)."""

    name: str
    session: str
    cpu: float = 0.0
    ram: float = 0.0
    net: float = 0.0
    ip: str = ""
    cpus: int = 1
    status: str = "free"
    paused_for: list[str] = field(default_factory=list)  # why it is paused: cpu, disk
    task_id: str | None = None
    last_seen: float = 0.0
    is_local: bool = False
    consumers: int = 0
    prefetch: int = 0
    processed: int = 0
    failed: int = 0
    version: str | None = None
    os: str = ""
    rtt_ms: float | None = None  # round trip of its previous report, as the worker timed it
    rate: float = 0.0  # tasks/s, smoothed over its reports
    holding: int = 0  # deliveries it holds unacked
    # Task id → when a report first showed it held (insertion order: the worker's own).
    held_since: dict[str, float] = field(default_factory=dict)
    reported_at: float = 0.0
    backup_queue: str | None = None  # where backups sent to this worker by name go


@dataclass
class ClusterTally:
    """Counts of the cluster's workers at `at` (time.time())."""

    at: float
    workers: int
    by_status: dict[str, int]
    consuming: int
    consuming_cpus: int


class Registry:
    """Workers by name. A live name belongs to its session: another node cannot take it over."""

    def __init__(self, report_interval_s: float = 1.0) -> None:
        self.stale_after_s = STALE_AFTER_INTERVALS * report_interval_s
        self._workers: dict[str, WorkerState] = {}
        self._tally: ClusterTally | None = None

    def _alive(self, worker: WorkerState, now: float) -> bool:
        return now - worker.last_seen <= self.stale_after_s

    def register(self, hello: WorkerHello, *, is_local: bool) -> WorkerState:
        """Add or renew a worker; refuse a name that another live session holds."""
        now = time.time()
        current = self._workers.get(hello.name)
        if current is not None and self._alive(current, now) and current.session != hello.session:
            raise Conflict(
                f"worker name {hello.name!r} is in use by a live worker ({current.ip or '?'}); "
                "choose another NODE_NAME or wait until it has been silent for "
                f"{self.stale_after_s:.0f} s"
            )
        worker = WorkerState(name=hello.name, session=hello.session or uuid.uuid4().hex)
        self._workers[hello.name] = worker
        self._tally = None  # a new member counts at once
        self._apply(worker, hello, now, is_local)
        return worker

    def report(self, hello: WorkerHello, *, is_local: bool) -> WorkerState:
        """Periodic report; an unknown or foreign session must register (again) first."""
        worker = self._owned(hello.name, hello.session)
        self._apply(worker, hello, time.time(), is_local)
        return worker

    def working(self, update: Working) -> WorkerState:
        """The worker's current task changed."""
        worker = self._owned(update.name, update.session)
        worker.status = update.status
        if update.status != "paused":
            worker.paused_for = []  # the reason comes with the next report
        worker.task_id = update.task_id
        worker.last_seen = now = time.time()
        for task_id in update.started:  # held too, before the next report says so
            worker.held_since.setdefault(task_id, now)
        worker.holding = len(worker.held_since)
        return worker

    def _owned(self, name: str, session: str | None) -> WorkerState:
        worker = self._workers.get(name)
        if worker is None or worker.session != session:
            raise NotFound(f"worker {name!r} is not registered (or registered again elsewhere)")
        return worker

    @staticmethod
    def _apply(worker: WorkerState, hello: WorkerHello, now: float, is_local: bool) -> None:
        if worker.reported_at and now > worker.reported_at:
            rate = max(0, hello.processed + hello.failed - worker.processed - worker.failed) / (
                now - worker.reported_at
            )
            worker.rate += RATE_SMOOTHING * (rate - worker.rate)
        worker.reported_at = now
        for name in (
            "cpu",
            "ram",
            "net",
            "ip",
            "cpus",
            "status",
            "paused_for",
            "task_id",
            "consumers",
            "prefetch",
            "processed",
            "failed",
            "version",
        ):
            setattr(worker, name, getattr(hello, name))
        worker.os = hello.os
        worker.backup_queue = hello.backup_queue
        if hello.rtt_ms is not None:
            worker.rtt_ms = hello.rtt_ms
        since = worker.held_since
        worker.held_since = {t: since.get(t, now) for t in hello.held}
        worker.holding = len(hello.held)
        worker.is_local = is_local
        worker.last_seen = now

    def _consuming(self, worker: WorkerState, now: float) -> bool:
        # Counted from registration on (a new worker consumes before its first report): the
        # count may be high for a moment, never low, and the worker takes the broker's if less.
        return worker.status in CONSUMING and self._alive(worker, now)

    def tally(self) -> ClusterTally:
        """Counts over every worker, recomputed at most every TALLY_MAX_AGE_S: what a report
        answer and GET /cluster give, the same size for 3 workers or 3 000."""
        now = time.time()
        if self._tally is None or now - self._tally.at > TALLY_MAX_AGE_S:
            by_status = dict.fromkeys(("free", "busy", "paused", "draining", "offline"), 0)
            consuming = consuming_cpus = 0
            for w in self._workers.values():
                status = w.status if self._alive(w, now) else "offline"
                by_status[status] = by_status.get(status, 0) + 1
                if self._consuming(w, now):
                    consuming += 1
                    consuming_cpus += w.cpus
            self._tally = ClusterTally(
                now, len(self._workers), by_status, consuming, consuming_cpus
            )
        return self._tally

    def others_consuming(self, name: str) -> dict[str, int]:
        """How many workers besides `name` consume the queue, and their cores."""
        tally = self.tally()
        workers, cpus = tally.consuming, tally.consuming_cpus
        me = self._workers.get(name)
        if me is not None and self._consuming(me, tally.at):
            workers, cpus = workers - 1, cpus - me.cpus
        return {"workers": max(0, workers), "cpus": max(0, cpus)}

    def take_lost(self) -> dict[str, list[str]]:
        """Workers silent past the liveness limit that still held deliveries: their task ids
        by worker name, handed out once (a worker that reports again holds afresh)."""
        now = time.time()
        lost: dict[str, list[str]] = {}
        for name, worker in self._workers.items():
            if worker.held_since and not self._alive(worker, now):
                lost[name] = list(worker.held_since)
                worker.held_since = {}
                worker.holding = 0
        return lost

    def is_live(self, name: str) -> bool:
        """Whether a worker called `name` reported recently."""
        worker = self._workers.get(name)
        return worker is not None and self._alive(worker, time.time())

    def live(self) -> list[WorkerState]:
        """The workers that reported recently."""
        now = time.time()
        return [w for w in self._workers.values() if self._alive(w, now)]

    def alive_count(self) -> int:
        """How many workers reported recently."""
        now = time.time()
        return sum(self._alive(w, now) for w in self._workers.values())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """GET /workers: every known worker, with `alive` and status `offline` when silent."""
        now = time.time()
        out: dict[str, dict[str, Any]] = {}
        for name, worker in sorted(self._workers.items()):
            view = {k: v for k, v in vars(worker).items() if k not in PRIVATE_FIELDS}
            view["rate"] = round(worker.rate, 2)
            view["seen_ago_s"] = round(max(0.0, now - worker.last_seen), 1)
            view["alive"] = self._alive(worker, now)
            if not view["alive"]:
                view["status"] = "offline"
                view["task_id"] = None
            out[name] = view
        return out
