"""Registry of custom task types, shared by the coordinator (validation) and workers (execution).

A task type is a pydantic payload model plus a top-level function. CPU-bound functions run in the
worker's process pool, so they must be importable top-level functions taking the payload as a
dict; others are coroutines run on the worker's event loop. Extra types come from the modules
named in TASK_MODULES, imported on both sides.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

IMAGE_TASK = "image"


@dataclass(frozen=True)
class TaskType:
    """A registered custom task type."""

    name: str
    payload: type[BaseModel]
    run: Callable[[dict[str, Any]], Any]
    cpu: bool
    description: str = ""


_REGISTRY: dict[str, TaskType] = {}


def task_type(
    name: str, payload: type[BaseModel], *, cpu: bool, description: str = ""
) -> Callable[[Callable[[dict[str, Any]], Any]], Callable[[dict[str, Any]], Any]]:
    """Register the decorated function as the runner of task type `name`."""

    def register(fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        if cpu and asyncio.iscoroutinefunction(fn):
            raise TypeError(f"task type {name!r}: a cpu task runs in a process, not a coroutine")
        _REGISTRY[name] = TaskType(name, payload, fn, cpu, description or (fn.__doc__ or ""))
        return fn

    return register


def get_task_type(name: str) -> TaskType | None:
    """The task type called `name`, or None."""
    return _REGISTRY.get(name)


def task_types() -> dict[str, TaskType]:
    """All registered task types by name."""
    return dict(_REGISTRY)


def load_task_modules(modules: list[str]) -> None:
    """Import the modules that register extra task types (TASK_MODULES)."""
    for module in modules:
        importlib.import_module(module)


class SleepPayload(BaseModel):
    """Payload of the built-in `sleep` task."""

    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0, le=60)


@task_type("sleep", SleepPayload, cpu=False, description="Wait `seconds` (0..60); no CPU used.")
async def run_sleep(payload: dict[str, Any]) -> dict[str, Any]:
    """Sleep without holding a CPU: the event loop keeps serving other tasks."""
    await asyncio.sleep(payload["seconds"])
    return {"slept": payload["seconds"]}


class PrimesPayload(BaseModel):
    """Payload of the built-in `primes` task."""

    model_config = ConfigDict(extra="forbid")
    below: int = Field(ge=2, le=20_000_000)


@task_type("primes", PrimesPayload, cpu=True, description="Count primes below `below` (CPU).")
def run_primes(payload: dict[str, Any]) -> dict[str, Any]:
    """Sieve of Eratosthenes: a small CPU-bound example task."""
    below = payload["below"]
    sieve = bytearray([1]) * below
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(below**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, below, i)))
    return {"below": below, "primes": sum(sieve)}
