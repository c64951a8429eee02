"""Preloaded by the pool's forkserver (see executor.py), never imported by the worker itself.

A terminal's Ctrl-C and systemd's stop signal the whole process group. The forkserver must
survive them: each pool process's liveness is a pipe from the forkserver, so its death breaks
the pool and fails every task in flight, the very tasks a draining worker wants to finish.
Pool processes inherit the ignored dispositions. CPython's resource tracker does the same.
"""

from __future__ import annotations

from sd_worker.executor import ignore_stop_signals

ignore_stop_signals()
