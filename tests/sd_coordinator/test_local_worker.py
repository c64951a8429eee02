"""The embedded local worker's link: a refusal by the coordinator's own services ends the task
as a 4xx answer ends it for a remote worker, and the consuming loop goes on."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from sd_common.messages import InputRef, TaskMessage
from sd_coordinator.local_worker import LocalRefused
from support.api import make_settings, running_app


async def test_a_task_the_coordinator_does_not_know_is_dropped_with_the_local_links_refusal(
    tmp_path: Path,
) -> None:
    async with running_app(make_settings(tmp_path)) as app:
        worker = app.state.services.local_worker
        unknown = "0" * 64
        with pytest.raises(LocalRefused) as refused:
            await worker.link.fetch_input(unknown)
        assert refused.value.status == 404

        processor = worker.processor
        failed = processor.failed
        task = TaskMessage(
            task_id=uuid.uuid4().hex,
            job_id=uuid.uuid4().hex,
            type="image",
            ops="grayscale",
            input=InputRef(sha256=unknown, size=1),
        )
        # Its input is refused (the task fails), then its outcome is refused (no such task):
        # handle() returns, so the delivery is settled instead of retried for ever.
        await processor.handle(task)
        assert processor.failed == failed + 1
        assert not processor.current
