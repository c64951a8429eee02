"""Live workers: registration, reports, current task and liveness."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from sd_common.messages import WorkerHello, Working
from sd_coordinator.errors import Conflict, NotFound

STALE_AFTER_INTERVALS = 3
# Statuses of a live worker that takes tasks from the queue (paused and draining ones do not).
CONSUMING = frozenset({"free", "busy"})
TALLY_MAX_AGE_S = 0.25


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
    task_id: str | None = None
    last_seen: float = 0.0
    is_local: bool = False
    consumers: int = 0
    prefetch: int = 0
    processed: int = 0
    failed: int = 0
    version: str | None = None
    os: str = ""


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
        worker.task_id = update.task_id
        worker.last_seen = time.time()
        return worker

    def _owned(self, name: str, session: str | None) -> WorkerState:
        worker = self._workers.get(name)
        if worker is None or worker.session != session:
            raise NotFound(f"worker {name!r} is not registered (or registered again elsewhere)")
        return worker

    @staticmethod
    def _apply(worker: WorkerState, hello: WorkerHello, now: float, is_local: bool) -> None:
        for field in (
            "cpu", "ram", "net", "ip", "cpus", "status", "task_id",
            "consumers", "prefetch", "processed", "failed", "version",
        ):  # fmt: skip
            setattr(worker, field, getattr(hello, field))
        worker.os = hello.os
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
            self._tally = ClusterTally(now, len(self._workers), by_status, consuming,
                                       consuming_cpus)  # fmt: skip
        return self._tally

    def others_consuming(self, name: str) -> dict[str, int]:
        """How many workers besides `name` consume the queue, and their cores."""
        tally = self.tally()
        workers, cpus = tally.consuming, tally.consuming_cpus
        me = self._workers.get(name)
        if me is not None and self._consuming(me, tally.at):
            workers, cpus = workers - 1, cpus - me.cpus
        return {"workers": max(0, workers), "cpus": max(0, cpus)}

    def alive_count(self) -> int:
        """How many workers reported recently."""
        now = time.time()
        return sum(self._alive(w, now) for w in self._workers.values())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """GET /workers: every known worker, with `alive` and status `offline` when silent."""
        now = time.time()
        out: dict[str, dict[str, Any]] = {}
        for name, worker in sorted(self._workers.items()):
            # A shallow copy: the fields are plain values, and asdict()'s deep copy made a
            # listing of 300 workers take tens of milliseconds.
            view = dict(vars(worker))
            del view["session"]
            view["alive"] = self._alive(worker, now)
            if not view["alive"]:
                view["status"] = "offline"
                view["task_id"] = None
            out[name] = view
        return out
