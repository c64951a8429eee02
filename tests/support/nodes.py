"""Simulated lab PCs: nodes that register and report to a coordinator as real workers do,
in any state, without consuming anything from the queue."""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections.abc import Iterable
from typing import Any

import aiohttp

MAX_IN_FLIGHT = 128


def node_body(
    name: str, session: str, status: str, *, cpus: int = 4, seq: int = 0, load: float | None = None
) -> dict[str, Any]:
    """A POST /register or /report body of a node in `status` (one consumer per core when it
    says it consumes: free or busy)."""
    consuming = status in ("free", "busy")
    return {
        "name": name,
        "session": session,
        "cpu": load if load is not None else 91.5 if status == "paused" else 3.0,
        "ram": 42.0 if load is None else round(30 + load / 4, 1),
        "net": 0.01 if load is None else round(load / 50, 2),
        "ip": f"10.22.{seq // 250}.{seq % 250 + 1}",
        "cpus": cpus,
        "status": status,
        "task_id": None,
        "consumers": cpus if consuming else 0,
        "prefetch": 2 if consuming else 0,
        "processed": seq,
        "failed": 0,
    }


class SimulatedNodes:
    """Nodes `names`, each in its status of `statuses`, reporting every `interval_s`;
    `reports` counts the answered reports. With `vary`, CPU, RAM and network move on every
    report as a real node's do (otherwise they stay the same)."""

    def __init__(
        self,
        url: str,
        token: str,
        names: Iterable[str],
        statuses: Iterable[str],
        interval_s: float = 1.0,
        cpus: int = 4,
        vary: bool = False,
    ) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.nodes = [(n, uuid.uuid4().hex, s) for n, s in zip(names, statuses, strict=True)]
        self.interval_s = interval_s
        self.cpus = cpus
        self.vary = vary
        self._random = random.Random(22)
        self.reports = 0
        self.errors = 0

    @classmethod
    def named(
        cls,
        url: str,
        token: str,
        prefix: str,
        count: int,
        status: str = "paused",
        interval_s: float = 1.0,
        cpus: int = 4,
    ) -> SimulatedNodes:
        """`count` nodes `prefix-000`… all in `status`."""
        names = [f"{prefix}-{i:03d}" for i in range(count)]
        return cls(url, token, names, [status] * count, interval_s, cpus)

    async def _post(self, http: aiohttp.ClientSession, path: str, i: int) -> None:
        name, session, status = self.nodes[i]
        try:
            load = round(self._random.uniform(5, 99), 1) if self.vary else None
            body = node_body(name, session, status, cpus=self.cpus, seq=i, load=load)
            async with http.post(self.url + path, json=body, headers=self.headers) as answer:
                await answer.read()
                if answer.status == 200:
                    self.reports += 1
                else:
                    self.errors += 1
        except aiohttp.ClientError:
            self.errors += 1

    async def register(self, http: aiohttp.ClientSession) -> None:
        """Register every node once."""
        await asyncio.gather(*(self._post(http, "/register", i) for i in range(len(self.nodes))))

    def register_blocking(self) -> None:
        """Register every node once, from a thread of its own (any caller's loop left alone)."""

        async def register() -> None:
            async with aiohttp.ClientSession() as http:
                await self.register(http)

        thread = threading.Thread(target=lambda: asyncio.run(register()))
        thread.start()
        thread.join(timeout=60)

    async def run(self, stop: asyncio.Event | threading.Event) -> None:
        """Register, then report each node every interval (spread over it) until `stop`."""
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector) as http:
            await self.register(http)
            loop = asyncio.get_running_loop()
            gap = self.interval_s / max(1, len(self.nodes))
            start = loop.time()
            tick = 0
            pending: set[asyncio.Task[None]] = set()
            while not stop.is_set():
                for i in range(len(self.nodes)):
                    if len(pending) >= MAX_IN_FLIGHT:  # a coordinator that falls behind
                        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    task = asyncio.create_task(self._post(http, "/report", i))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    tick += 1
                    if (delay := start + tick * gap - loop.time()) > 0:
                        await asyncio.sleep(delay)
                    if stop.is_set():
                        break
            await asyncio.gather(*pending, return_exceptions=True)


class NodesInThread:
    """SimulatedNodes reporting from a thread of their own (for synchronous tests)."""

    def __init__(self, nodes: SimulatedNodes) -> None:
        self.nodes = nodes
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(nodes.run(self._stop)), daemon=True
        )

    def __enter__(self) -> SimulatedNodes:
        self._thread.start()
        return self.nodes

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
