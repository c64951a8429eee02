"""A task type that kills the pool process running it, for fault tests (TASK_MODULES)."""

from __future__ import annotations

import os
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
