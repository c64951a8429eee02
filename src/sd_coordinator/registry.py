"""Live workers: registration, reports, current task and liveness."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sd_common.messages import WorkerHello, Working
from sd_coordinator.errors import Conflict, NotFound

STALE_AFTER_INTERVALS = 3


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


class Registry:
    """Workers by name. A live name belongs to its session: another node cannot take it over."""

    def __init__(self, report_interval_s: float = 1.0) -> None:
        self.stale_after_s = STALE_AFTER_INTERVALS * report_interval_s
        self._workers: dict[str, WorkerState] = {}

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

    def alive_count(self) -> int:
        """How many workers reported recently."""
        now = time.time()
        return sum(self._alive(w, now) for w in self._workers.values())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """GET /workers: every known worker, with `alive` and status `offline` when silent."""
        now = time.time()
        out: dict[str, dict[str, Any]] = {}
        for name, worker in sorted(self._workers.items()):
            view = asdict(worker)
            del view["session"]
            view["alive"] = self._alive(worker, now)
            if not view["alive"]:
                view["status"] = "offline"
                view["task_id"] = None
            out[name] = view
        return out
