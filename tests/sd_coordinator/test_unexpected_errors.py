"""An unexpected exception (a PermissionError writing results/) ends a task, never the embedded
worker's consuming loops: the task fails with its reason and the next job still runs."""

from __future__ import annotations

from pathlib import Path

from support.api import asgi_client, make_settings, png_bytes, running_app, wait_job
from support.immutable import immutable


async def test_a_disk_that_refuses_results_fails_the_tasks_and_the_loops_go_on(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, delivery_limit=2)
    async with running_app(settings) as app, asgi_client(app) as client:
        loops = app.state.services.local_worker.loops
        with immutable(tmp_path / "results"):
            sent = await client.post(
                "/upload",
                files={"file": ("a.png", png_bytes())},
                data={"ops": "grayscale", "copies": str(loops + 1)},
            )
            assert sent.status_code == 202, sent.text
            job = await wait_job(client, sent.json()["job_id"], timeout_s=60)
        assert job["state"] == "failed"
        assert job["failed"] == loops + 1
        assert all("PermissionError" in t["error"] for t in job["tasks"]), job["tasks"][0]

        # Every loop survived: the next job is processed once the disk takes writes again.
        again = await client.post(
            "/upload", files={"file": ("b.png", png_bytes())}, data={"copies": str(loops + 1)}
        )
        job = await wait_job(client, again.json()["job_id"], timeout_s=60)
        assert job["state"] == "done", job
