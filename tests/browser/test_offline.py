"""The coordinator's pages on a network without internet: every request outside this machine
is aborted in the browser, and /docs, /redoc and the dashboard must still work, having asked
for nothing outside."""

from __future__ import annotations

import re
from importlib.metadata import version
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from support.cluster import Cluster
from support.images import sample_image

if TYPE_CHECKING:
    from browser.conftest import Dashboard

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def offline_page(dashboard: Dashboard, url: str) -> tuple[Page, list[str]]:
    """A page on `url` whose requests beyond this machine fail as without internet; the list
    fills with every URL it tried to reach outside."""
    page = dashboard.open("about:blank")
    outside: list[str] = []

    def only_local(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    page.context.route("**/*", only_local)
    page.goto(url)
    return page, outside


def test_docs_show_the_operations_and_try_it_out_uploads_without_internet(
    embedded_cluster: Cluster, dashboard: Dashboard
) -> None:
    embedded_cluster.start_coordinator()
    page, outside = offline_page(dashboard, f"{embedded_cluster.url}/docs")

    upload = page.locator(".opblock-post", has=page.locator('[data-path="/upload"]'))
    expect(upload).to_be_visible()
    expect(page.locator('.opblock-get [data-path="/jobs"]')).to_be_visible()
    upload.locator(".opblock-summary").first.click()
    upload.get_by_role("button", name="Try it out").click()
    # The form starts with one file; a second through the array's "Add … item".
    upload.locator(".json-schema-form-item-add").click()
    pickers = upload.locator('input[type="file"]')
    expect(pickers).to_have_count(2)
    for index, name in enumerate(("uno.jpg", "dos.jpg")):
        pickers.nth(index).set_input_files(
            {"name": name, "mimeType": "image/jpeg", "buffer": sample_image(seed=index)}
        )
    upload.get_by_role("button", name="Execute").click()

    status = upload.locator(".live-responses-table tbody .response-col_status")
    expect(status).to_have_text("202")
    with embedded_cluster.client() as client:
        newest = client.get("/jobs").json()[0]
    # Swagger UI fills `ops` with its documented example.
    assert (newest["ops"], newest["total"]) == ("grayscale,blur:2", 2)
    job = embedded_cluster.wait_job(newest["job_id"])
    assert job["state"] == "done", job
    assert outside == []


def test_redoc_shows_the_operations_without_internet(
    embedded_cluster: Cluster, dashboard: Dashboard
) -> None:
    embedded_cluster.start_coordinator()
    page, outside = offline_page(dashboard, f"{embedded_cluster.url}/redoc")

    # ReDoc names each operation's heading by its anchor and summary.
    expect(
        page.get_by_role("heading", name=re.compile(r"operation.upload\w* Upload$"))
    ).to_be_visible()
    expect(page.get_by_text("Queue image tasks: each file × copies")).to_be_visible()
    assert outside == []


def test_dashboard_asks_nothing_outside_and_shows_the_coordinators_version(
    embedded_cluster: Cluster, dashboard: Dashboard
) -> None:
    embedded_cluster.start_coordinator()
    page, outside = offline_page(dashboard, embedded_cluster.url)

    installed = version("sistema-distribuido")
    expect(page.get_by_test_id("coordinator-version")).to_have_text(f"v{installed}")
    card = page.locator('[data-testid^="node-card-"]').first
    expect(card.get_by_test_id("node-version")).to_have_text(f"v{installed}")
    expect(card.get_by_test_id("node-version")).to_have_attribute("data-skew", "false")
    page.wait_for_load_state("load")
    assert page.evaluate("document.fonts.ready.then(() => document.fonts.status)") == "loaded"
    assert outside == []
