"""Tasks completed per second over a sliding window."""

from __future__ import annotations

import time
from collections import deque


class RateWindow:
    """Counts events in the last `window_s` seconds, in 100 ms buckets."""

    def __init__(self, window_s: float = 5.0, bucket_s: float = 0.1) -> None:
        self.window_s = window_s
        self.bucket_s = bucket_s
        self._buckets: deque[tuple[int, int]] = deque()
        self.total = 0

    def record(self, count: int = 1, now: float | None = None) -> None:
        """Count `count` events at `now`."""
        key = int((time.monotonic() if now is None else now) / self.bucket_s)
        if self._buckets and self._buckets[-1][0] == key:
            self._buckets[-1] = (key, self._buckets[-1][1] + count)
        else:
            self._buckets.append((key, count))
        self.total += count
        self._trim(key)

    def _trim(self, key: int) -> None:
        oldest = key - int(self.window_s / self.bucket_s)
        while self._buckets and self._buckets[0][0] <= oldest:
            self._buckets.popleft()

    def rate(self, now: float | None = None) -> float:
        """Events per second over the window."""
        self._trim(int((time.monotonic() if now is None else now) / self.bucket_s))
        return sum(n for _, n in self._buckets) / self.window_s
