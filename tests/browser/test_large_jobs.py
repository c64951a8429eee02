"""The dashboard with folders, partial uploads, cancelling and a job of 20 000 tasks, in real
headless Chromium against a real coordinator."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image, ImageOps
from playwright.sync_api import Response, expect

from support.cluster import Cluster
from support.images import decode, same_pixels, sample_image

if TYPE_CHECKING:
    from browser.conftest import Dashboard

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

JOB_TIMEOUT_MS = 90_000


def tiny_png(i: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (i % 256, i // 256 % 256, 7)).save(out, "PNG")
    return out.getvalue()


def test_a_dropped_folder_with_a_bad_photo_goes_into_one_job_and_the_bad_one_is_listed(
    embedded_cluster: Cluster, dashboard: Dashboard, tmp_path: Path
) -> None:
    embedded_cluster.start_coordinator()
    trip = tmp_path / "viaje"
    photos = {}
    for i in range(9):
        path = trip / f"dia{i % 2}" / f"foto{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        photos[f"viaje/dia{i % 2}/foto{i}.jpg"] = sample_image(96, 64, seed=i)
        path.write_bytes(photos[f"viaje/dia{i % 2}/foto{i}.jpg"])
    (trip / "rota.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (trip / "leeme.txt").write_text("notes")
    page = dashboard.open(embedded_cluster.url)
    expect(page.get_by_test_id("op-select")).to_be_visible()

    page.get_by_test_id("folder-input").set_input_files(str(trip))
    expect(page.get_by_test_id("file-count")).to_have_text("11")
    page.get_by_test_id("upload-submit").click()

    expect(page.get_by_test_id("upload-success")).to_have_text(re.compile(r"sent: 9 tasks\.$"))
    refused = page.get_by_test_id("refused-file")
    expect(refused).to_have_count(2)
    expect(refused.filter(has_text="viaje/leeme.txt")).to_have_text("viaje/leeme.txt: not an image")
    expect(refused.filter(has_text="viaje/rota.jpg")).to_contain_text("viaje/rota.jpg: ")
    view = page.get_by_test_id("job-view")
    job_id = view.get_attribute("data-job-id")
    expect(page.get_by_test_id(f"job-row-{job_id}")).to_have_attribute(
        "data-state", "done", timeout=JOB_TIMEOUT_MS
    )
    with embedded_cluster.client() as client:
        job = client.get(f"/jobs/{job_id}").json()
    assert job["kind"] == "files" and job["total"] == 9
    results = {t["filename"]: t["result"] for t in job["tasks"]}
    assert set(results) == set(photos)
    with embedded_cluster.client() as client:
        for name, data in photos.items():
            png = client.get(f"/result/{results[name]}").content
            assert same_pixels(decode(png), ImageOps.grayscale(decode(data))), name


def test_a_job_of_20000_tasks_shows_a_page_at_a_time_and_is_cancelled_from_its_view(
    embedded_cluster: Cluster, dashboard: Dashboard
) -> None:
    embedded_cluster.start_coordinator()
    with embedded_cluster.client(120) as client:
        job = client.post("/jobs", json={"ops": "grayscale,blur:3", "copies": 200}).json()
        sent = client.post(
            f"/jobs/{job['job_id']}/files",
            files=[("file", (f"t{i}.png", tiny_png(i))) for i in range(100)],
        )
        assert sent.json()["tasks"] == 20_000, sent.text
        client.post(f"/jobs/{job['job_id']}/close")
    job_bodies: list[int] = []

    def count_tasks(response: Response) -> None:
        if f"/jobs/{job['job_id']}" in response.url and response.ok:
            body = json.loads(response.body())
            job_bodies.append(len(body.get("tasks", [])))

    page = dashboard.open(f"{embedded_cluster.url}/#job={job['job_id']}")
    page.on("response", count_tasks)
    page.reload()
    view = page.get_by_test_id("job-view")
    expect(view.get_by_test_id("task-count")).to_have_text("20000")
    cards = view.locator("li.task-card")
    expect(cards).to_have_count(48)
    view.get_by_test_id("show-more").click()
    expect(cards).to_have_count(96)
    view.get_by_test_id("task-filter").select_option("failed")
    expect(cards).to_have_count(0)
    expect(view.get_by_test_id("task-count")).to_have_text("0")
    # The page never asked for the whole job: each answer held one page of tasks at most.
    assert job_bodies and max(job_bodies) <= 96, job_bodies

    view.get_by_test_id("cancel-job").click()
    expect(view.locator(".job-view-title .pill")).to_have_text("cancelled")
    expect(view.get_by_test_id("cancel-job")).to_have_count(0)
    with embedded_cluster.client() as client:
        summary = client.get(f"/jobs/{job['job_id']}", params={"limit": 0}).json()
    assert summary["state"] == "cancelled"
    assert summary["done"] + summary["failed"] + summary["cancelled"] == 20_000
    assert summary["cancelled"] > 0
