"""A task that naps, far longer on one named node: a straggler for tests (TASK_MODULES)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sd_common.tasks import task_type


class NapPayload(BaseModel):
    """Payload of the `nap` task."""

    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0, le=60)
    slow_node: str = ""
    slow_factor: float = Field(1, ge=1, le=1000)


@task_type(
    "nap",
    NapPayload,
    cpu=False,
    description="Sleep; `slow_factor` times longer on the worker whose NODE_NAME is `slow_node`.",
)
async def run_nap(payload: dict[str, Any]) -> dict[str, Any]:
    """Sleep on the event loop (no CPU); report which node did it."""
    node = os.environ.get("NODE_NAME", "")
    factor = payload["slow_factor"] if node == payload["slow_node"] else 1
    await asyncio.sleep(payload["seconds"] * factor)
    return {"node": node}


class PoolNapPayload(BaseModel):
    """Payload of the `pool_nap` task."""

    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0, le=60)


@task_type(
    "pool_nap",
    PoolNapPayload,
    cpu=True,
    description="Hold a pool process for `seconds` without using its CPU.",
)
def run_pool_nap(payload: dict[str, Any]) -> dict[str, Any]:
    """Sleep in a pool process: the worker's throughput is its pool size / seconds."""
    time.sleep(payload["seconds"])
    return {"node": os.environ.get("NODE_NAME", "")}
