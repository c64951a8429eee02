"""A TASK_MODULES entry that makes a worker's process pool slow to start: imported by a pool
process (or the forkserver that forks them), it sleeps first; in the worker itself it does not."""

from __future__ import annotations

import sys
import time

POOL_START_S = 6.0

# Pool processes and the forkserver run as `python -c ...`; the worker runs as its script.
if sys.argv[:1] == ["-c"]:
    time.sleep(POOL_START_S)
