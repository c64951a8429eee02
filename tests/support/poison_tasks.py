"""Task types that misbehave in the pool, for fault tests (TASK_MODULES)."""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from sd_common.tasks import task_type


class CrashPayload(BaseModel):
    """Payload of the `crash` task: nothing."""

    model_config = ConfigDict(extra="forbid")


@task_type("crash", CrashPayload, cpu=True, description="Kill the pool process (poison).")
def run_crash(payload: dict[str, Any]) -> None:
    """Exit the process at once, as a segfaulting C extension would."""
    os._exit(1)


class LingerPayload(BaseModel):
    """Payload of the `linger` task: how long to hold a pool process."""

    model_config = ConfigDict(extra="forbid")

    seconds: float


@task_type("linger", LingerPayload, cpu=True, description="Hold a pool process (a stuck task).")
def run_linger(payload: dict[str, Any]) -> dict[str, Any]:
    """Keep the pool process busy for `seconds`, as a task stuck in a loop would."""
    time.sleep(payload["seconds"])
    return {"slept": payload["seconds"]}
