"""What every process pool (sd_worker.loop_pool, sd_worker.portable_pool) raises when a call
passes its limits; the memory cap itself is set in the pool process (executor.cap_memory)."""

from __future__ import annotations


class TaskTimedOut(Exception):
    """The call ran past the pool's time limit: its process was killed and replaced."""


def timed_out_message(limit_s: float) -> str:
    """The reason a task that passed the time limit fails with."""
    return f"the task ran longer than the time limit of {limit_s:g} s; its pool process was stopped"


class NotStarted(Exception):
    """A call the pool handed back before any process started it (the worker is draining)."""
