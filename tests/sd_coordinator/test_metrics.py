"""GET /metrics: Prometheus text that the official parser reads, with values matching real jobs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sd_coordinator.app import create_app
from support.api import asgi_client, make_settings, png_bytes, running_app, wait_job

SLEEPS = 5
COPIES = 3


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def metrics_of(client: httpx.AsyncClient) -> dict[tuple[str, Any], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return scrape(response.text)


async def test_metrics_count_a_real_job_run_by_the_embedded_worker(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, report_interval_s=0.2)
    async with running_app(settings) as app, asgi_client(app) as client:
        sleeps = await client.post(
            "/task", json={"type": "sleep", "payload": {"seconds": 0}, "copies": SLEEPS}
        )
        images = await client.post(
            "/upload",
            files={"file": ("a.png", png_bytes())},
            data={"ops": "grayscale", "copies": str(COPIES)},
        )
        for sent in (sleeps, images):
            assert sent.status_code == 202, sent.text
            assert (await wait_job(client, sent.json()["job_id"]))["state"] == "done"
        total = SLEEPS + COPIES
        local = f"{settings.node_name}-local"
        worker = ("worker", local)
        for _ in range(100):  # the local worker reports its counters every 0.2 s
            values = await metrics_of(client)
            if values.get(("sd_worker_processed_total", (worker,))) == total:
                break
            await asyncio.sleep(0.05)

    assert values[("sd_tasks_total", (("state", "queued"),))] == total
    assert values[("sd_tasks_total", (("state", "done"),))] == total
    assert values[("sd_tasks_total", (("state", "failed"),))] == 0
    assert values[("sd_task_duration_seconds_count", ())] == total
    assert values[("sd_task_duration_seconds_sum", ())] > 0
    assert values[("sd_task_duration_seconds_bucket", (("le", "+Inf"),))] == total
    for state, count in {"queued": 0, "running": 0, "done": total, "failed": 0}.items():
        assert values[("sd_tasks_in_state", (("state", state),))] == count
    assert values[("sd_queue_depth", ())] == 0
    assert values[("sd_worker_alive", (worker,))] == 1
    assert values[("sd_worker_processed_total", (worker,))] == total
    assert values[("sd_worker_failed_total", (worker,))] == 0
    for gauge in ("sd_worker_cpu_percent", "sd_worker_ram_percent", "sd_worker_net_mbps"):
        assert 0 <= values[(gauge, (worker,))] <= (1e6 if "net" in gauge else 100)


async def test_queued_tasks_show_in_the_gauges_before_they_run(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as app, asgi_client(app) as client:
        # Long sleeps take every local consumer; the rest wait in the embedded queue.
        sent = await client.post(
            "/task", json={"type": "sleep", "payload": {"seconds": 60}, "copies": 64}
        )
        assert sent.status_code == 202
        for _ in range(100):
            values = await metrics_of(client)
            if values[("sd_tasks_in_state", (("state", "running"),))] > 0:
                break
            await asyncio.sleep(0.05)
        running = values[("sd_tasks_in_state", (("state", "running"),))]
        queued = values[("sd_tasks_in_state", (("state", "queued"),))]
        assert running > 0 and running + queued == 64
        assert values[("sd_queue_depth", ())] == queued
        assert values[("sd_tasks_total", (("state", "done"),))] == 0


async def test_metrics_need_the_api_token_when_one_is_set(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, api_token="secret")
    async with running_app(settings) as app:
        async with asgi_client(app) as anonymous:
            assert (await anonymous.get("/metrics")).status_code == 401
        async with asgi_client(app, Authorization="Bearer secret") as client:
            assert (await client.get("/metrics")).status_code == 200


@pytest.mark.parametrize("apps", [2])
def test_each_app_has_its_own_registry(tmp_path: Path, apps: int) -> None:
    built = [create_app(make_settings(tmp_path / str(i))) for i in range(apps)]
    registries = {id(app.state.services.metrics.registry) for app in built}
    assert len(registries) == apps
    first = built[0].state.services.metrics
    first.submitted(3)
    text = built[1].state.services.metrics.render({}, 0, {}).decode()
    assert scrape(text)[("sd_tasks_total", (("state", "queued"),))] == 0
