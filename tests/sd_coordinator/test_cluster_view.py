"""A constant-size look at the cluster: GET /cluster, the report's answer, and the changes
that GET /events sends instead of the whole listing."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import httpx

from sd_coordinator.snapshot import snapshot_delta
from support.api import asgi_client, make_settings, running_app


async def report(
    client: httpx.AsyncClient, name: str, status: str, cpus: int = 2, path: str = "/report"
) -> httpx.Response:
    body = {
        "name": name,
        "session": f"s-{name}",
        "status": status,
        "cpus": cpus,
        "consumers": cpus if status in ("free", "busy") else 0,
    }
    answer = await client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer


async def test_cluster_summary_has_the_same_size_for_3_nodes_or_300(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as app, asgi_client(app) as client:
        for i in range(3):
            await report(client, f"pc-{i:03d}", "free", path="/register")
        few = await client.get("/cluster")
        assert few.status_code == 200, few.text
        for i in range(3, 300):
            await report(client, f"pc-{i:03d}", ("free", "paused")[i % 2], path="/register")
        many = await client.get("/cluster")
        listing = await client.get("/workers")
    assert abs(len(many.content) - len(few.content)) <= 16
    assert len(listing.content) > 50 * len(many.content)
    summary = many.json()
    assert summary["by_status"]["paused"] == 149
    assert summary["consuming"] == summary["by_status"]["free"] + summary["by_status"]["busy"]


async def test_a_reports_answer_counts_only_the_other_workers_that_consume(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as app, asgi_client(app) as client:
        base = (await client.get("/cluster")).json()  # the embedded local worker, if any
        await report(client, "me", "busy", cpus=2, path="/register")
        await report(client, "pc-paused-1", "paused", cpus=8, path="/register")
        await report(client, "pc-paused-2", "paused", cpus=8, path="/register")
        await report(client, "pc-draining", "draining", cpus=8, path="/register")
        await report(client, "pc-free", "free", cpus=4, path="/register")
        answer = (await report(client, "me", "busy", cpus=2)).json()
    others = answer["others_consuming"]
    assert others["workers"] == base["consuming"] + 1
    assert others["cpus"] == base["consuming_cpus"] + 4


def test_a_delta_applied_to_the_old_snapshot_gives_the_new_one() -> None:
    worker = {
        "name": "a",
        "cpu": 1.0,
        "ram": 2.0,
        "alive": True,
        "status": "free",
        "last_seen": 100.0,
        "processed": 3,
    }
    before: dict[str, Any] = {
        "workers": {f"pc-{i:03d}": {**worker, "name": f"pc-{i:03d}"} for i in range(300)},
        "queue_size": 5,
        "tps": 0.0,
        "jobs": [{"job_id": "j"}],
        "server_time": 1.0,
    }
    after = copy.deepcopy(before)
    after["workers"]["pc-001"].update(cpu=55.5, status="busy", last_seen=101.0)
    after["workers"]["pc-002"].update(alive=False, status="offline", last_seen=98.0)
    for view in after["workers"].values():
        view["last_seen"] = max(view["last_seen"], 101.0) if view["alive"] else view["last_seen"]
    del after["workers"]["pc-003"]
    after["workers"]["pc-new"] = {**worker, "name": "pc-new"}
    after["server_time"] = 2.0
    after["queue_size"] = 6

    delta = snapshot_delta(before, after)
    assert set(delta["workers"]) == {"pc-001", "pc-002", "pc-new"}
    assert delta["workers"]["pc-001"] == {"cpu": 55.5, "status": "busy"}
    assert delta["workers"]["pc-002"]["last_seen"] == 98.0
    assert delta["gone"] == ["pc-003"]
    assert "jobs" not in delta and delta["queue_size"] == 6

    rebuilt = copy.deepcopy(before)
    for name in delta.pop("gone"):
        del rebuilt["workers"][name]
    for name, fields in delta.pop("workers").items():
        rebuilt["workers"].setdefault(name, {}).update(fields)
    rebuilt.update(delta)
    # Equal but for the last_seen of workers that stayed alive, which the page does not show.
    for view in (*rebuilt["workers"].values(), *after["workers"].values()):
        if view["alive"]:
            view.pop("last_seen")
    assert rebuilt == after


async def test_a_reports_answer_counts_the_unfinished_tasks_of_every_job(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as app, asgi_client(app) as client:
        await report(client, "me", "free", path="/register")
        sent = await client.post(
            "/task", json={"type": "sleep", "payload": {"seconds": 60}, "copies": 40}
        )
        assert sent.status_code == 202, sent.text
        await asyncio.sleep(0.6)  # past the count the registration's moment may have cached
        answer = (await report(client, "me", "free")).json()
    # The embedded local worker may have started a few: they are unfinished too.
    assert answer["unfinished_tasks"] == 40
