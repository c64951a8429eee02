"""`sd-submit`'s one-line progress bar on stderr (only when stderr is a terminal)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

WIDTH = 24
REDRAW_S = 0.2


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@dataclass
class Progress:
    """Counts of one run and the line that shows them."""

    files: int = 0  # files to send
    tasks: int = 0  # results expected from this run
    sent: int = 0
    done: int = 0
    failed: int = 0
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    enabled: bool = field(default_factory=lambda: sys.stderr.isatty())
    started: float = field(default_factory=time.monotonic)
    _drawn: float = 0.0

    def line(self) -> str:
        """`[####----] sent 120/500 · done 98 failed 2 /500 · 35.1/s · ETA 11s`"""
        finished = self.done + self.failed
        share = finished / self.tasks if self.tasks else 1.0
        bar = "#" * round(share * WIDTH)
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = finished / elapsed
        eta = _duration((self.tasks - finished) / rate) if rate > 0 else "?"
        return (
            f"[{bar:-<{WIDTH}}] sent {self.sent}/{self.files} · done {self.done} failed "
            f"{self.failed} /{self.tasks} · {rate:.1f}/s · ETA {eta}"
        )

    def draw(self, force: bool = False) -> None:
        """Redraw the line (at most every REDRAW_S unless forced)."""
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn < REDRAW_S):
            return
        self._drawn = now
        self.stream.write("\r" + self.line() + "\x1b[K")
        self.stream.flush()

    def end(self) -> None:
        """Leave the last line on screen."""
        if self.enabled:
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
