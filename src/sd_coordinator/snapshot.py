"""One view of the whole cluster, built at most once per interval however many pages watch,
and what changed between two views (what GET /events sends after its first snapshot)."""

from __future__ import annotations

import time
from typing import Any

from sd_common.version import VERSION
from sd_coordinator.lifespan import Services

SNAPSHOT_JOBS = 50


def workers_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The workers' changed fields by name, and the names gone. `seen_ago_s` is left out (it
    grows every second, and `server_time - last_seen` gives it), and so is `last_seen` of a
    worker that stays alive (it moves on every report and the page shows it only once the
    worker is offline): it comes with the change that turns a worker offline."""
    changed: dict[str, Any] = {}
    for name, view in after.items():
        old = before.get(name)
        if old is None:
            changed[name] = view
            continue
        fields = {k: v for k, v in view.items() if old.get(k) != v}
        fields.pop("seen_ago_s", None)  # grows every second; server_time - last_seen gives it
        if view.get("alive") and old.get("alive"):
            fields.pop("last_seen", None)
        elif view.get("alive") != old.get("alive"):
            fields["last_seen"] = view.get("last_seen")
        if fields:
            changed[name] = fields
    return {"workers": changed, "gone": [name for name in before if name not in after]}


def snapshot_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What changed from snapshot `before` to `after`: the workers' delta, and every other key
    whose value changed (server_time always)."""
    delta = workers_delta(before["workers"], after["workers"])
    for key, value in after.items():
        if key != "workers" and (key == "server_time" or before.get(key) != value):
            delta[key] = value
    return delta


class SnapshotCache:
    """Caches the cluster snapshot that GET /events pushes to every dashboard."""

    def __init__(self, services: Services, max_age_s: float = 0.5) -> None:
        self.services = services
        self.max_age_s = max_age_s
        self._at = 0.0
        self._value: dict[str, Any] | None = None
        # The last delta computed, with the two snapshots it joins: every page that saw the
        # previous snapshot gets the same one.
        self._delta: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None = None

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
                "totals": (await s.store.totals()).as_json(),
                "jobs": [job.as_json() for job in await s.store.list_jobs(SNAPSHOT_JOBS)],
                "server_time": time.time(),
                "mode": "embedded" if s.settings.embedded else "rabbitmq",
                "version": VERSION,
            }
            self._at = now
        return self._value

    def delta(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        """`snapshot_delta(before, after)`, computed once for every page at the same point."""
        if self._delta is None or self._delta[0] is not before or self._delta[1] is not after:
            self._delta = (before, after, snapshot_delta(before, after))
        return self._delta[2]
