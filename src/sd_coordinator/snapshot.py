"""One view of the whole cluster, built at most once per interval however many pages watch."""

from __future__ import annotations

import time
from typing import Any

from sd_common.version import VERSION
from sd_coordinator.lifespan import Services

SNAPSHOT_JOBS = 50


class SnapshotCache:
    """Caches the cluster snapshot that GET /events pushes to every dashboard."""

    def __init__(self, services: Services, max_age_s: float = 0.5) -> None:
        self.services = services
        self.max_age_s = max_age_s
        self._at = 0.0
        self._value: dict[str, Any] | None = None

    async def get(self) -> dict[str, Any]:
        """The snapshot: workers, queue size, tps, totals and the newest jobs."""
        now = time.monotonic()
        if self._value is None or now - self._at > self.max_age_s:
            s = self.services
            try:
                queue_size = await s.broker.pending()
            except Exception:  # broker away: the page shows the rest and says so
                queue_size = -1
            self._value = {
                "workers": s.registry.snapshot(),
                "queue_size": queue_size,
                "tps": round(s.rates.rate(), 3),
                "totals": await s.store.totals(),
                "jobs": await s.store.list_jobs(SNAPSHOT_JOBS),
                "server_time": time.time(),
                "mode": "embedded" if s.settings.embedded else "rabbitmq",
                "version": VERSION,
            }
            self._at = now
        return self._value
