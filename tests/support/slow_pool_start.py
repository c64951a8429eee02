"""A TASK_MODULES entry that makes a worker's process pool slow to start: imported by a pool
process (or the forkserver that forks them), it sleeps first; in the worker itself it does not."""

from __future__ import annotations

import multiprocessing
import sys
import time

POOL_START_S = 6.0

# The forkserver and its children run as `python -c ...`; a spawned pool process takes the
# worker's argv, but has a parent process. The worker itself runs as its script.
if sys.argv[:1] == ["-c"] or multiprocessing.parent_process() is not None:
    time.sleep(POOL_START_S)
