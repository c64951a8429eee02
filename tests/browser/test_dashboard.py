"""The dashboard in real headless Chromium against real coordinators and workers.

Every wait is a Playwright `expect(...)` with a timeout (it polls); nothing sleeps and hopes.
"""

from __future__ import annotations

import io
import re
import signal
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image, ImageFilter, ImageOps
from playwright.sync_api import FilePayload, Locator, Page, expect

from support.cluster import Cluster
from support.images import decode, same_pixels, sample_image

if TYPE_CHECKING:
    from browser.conftest import Dashboard

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PIPELINE = "grayscale,blur:2"
# A job of a few small images on one worker; generous for a loaded 2-core machine.
JOB_TIMEOUT_MS = 90_000
PHONE = {"width": 390, "height": 844}
# Roles a user operates, each of which needs an accessible name.
INTERACTIVE_ROLES = {
    "button",
    "link",
    "textbox",
    "searchbox",
    "spinbutton",
    "combobox",
    "listbox",
    "checkbox",
    "radio",
    "switch",
    "slider",
    "tab",
    "menuitem",
}


def pillow_reference(data: bytes) -> Image.Image:
    """`grayscale,blur:2` done by hand with Pillow, after the ops module's normalisation."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    return ImageOps.grayscale(image).filter(ImageFilter.GaussianBlur(2))


def file_payload(name: str, data: bytes) -> FilePayload:
    """A file for `set_input_files`, with the type a browser derives from the extension."""
    mime = "image/png" if name.endswith(".png") else "image/jpeg"
    return {"name": name, "mimeType": mime, "buffer": data}


def upload_through_page(page: Page, files: dict[str, bytes], ops: str, copies: int) -> None:
    """Fill the upload form as a user would and press the button."""
    # The builder loads /ops first; typing before it would race the default pipeline.
    expect(page.get_by_test_id("op-select")).to_be_visible()
    page.get_by_test_id("file-input").set_input_files(
        [file_payload(name, data) for name, data in files.items()]
    )
    page.get_by_test_id("ops-input").fill(ops)
    page.get_by_test_id("copies-input").fill(str(copies))
    page.get_by_test_id("upload-submit").click()


def uploaded_job_id(page: Page) -> str:
    """The job the page opened after a successful upload."""
    view = page.get_by_test_id("job-view")
    expect(view).to_have_attribute("data-job-id", re.compile(r"^[0-9a-f-]{8,}$"))
    job_id = view.get_attribute("data-job-id")
    assert job_id
    return job_id


def job_progress(page: Page, job_id: str) -> Locator:
    return page.get_by_test_id(f"job-row-{job_id}").get_by_role("progressbar")


def scroll_width(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def unnamed_controls(page: Page) -> list[str]:
    """Controls in Chromium's accessibility tree without a real accessible name: empty, or only
    a glyph such as ✕ or ↑ (a screen reader says "multiplication x")."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("Accessibility.enable")
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
        missing = []
        for node in nodes:
            role = node.get("role", {}).get("value")
            name = str(node.get("name", {}).get("value", ""))
            if node.get("ignored") or role not in INTERACTIVE_ROLES or re.search(r"\w", name):
                continue
            described = cdp.send("DOM.describeNode", {"backendNodeId": node["backendDOMNodeId"]})
            element = described["node"]
            attributes = element.get("attributes", [])
            missing.append(f"{role} {name!r}: <{element['localName']} {' '.join(attributes)}>")
        return missing
    finally:
        cdp.detach()


def test_upload_through_the_page_gives_pillows_pixels_and_a_zip(
    cluster: Cluster, dashboard: Dashboard
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("obrero")
    images = {"uno.jpg": sample_image(seed=1), "dos.png": sample_image(fmt="PNG", seed=2)}
    expected = {Path(name).stem: pillow_reference(data) for name, data in images.items()}
    page = dashboard.open(cluster.url)
    expect(page.get_by_test_id("node-card-obrero")).to_be_visible()

    upload_through_page(page, images, PIPELINE, copies=3)

    job_id = uploaded_job_id(page)
    expect(page.get_by_test_id("upload-success")).to_have_text(f"Job {job_id[:8]} sent: 6 tasks.")
    with cluster.client() as client:
        newest = client.get("/jobs").json()[0]
    assert (newest["job_id"], newest["ops"], newest["total"]) == (job_id, PIPELINE, 6)
    row = page.get_by_test_id(f"job-row-{job_id}")
    expect(job_progress(page, job_id)).to_have_attribute(
        "aria-valuenow", "100", timeout=JOB_TIMEOUT_MS
    )
    expect(row).to_have_attribute("data-state", "done")

    # Close the view the upload opened, then open it from the job list.
    page.get_by_role("button", name="Close job").click()
    expect(page.get_by_test_id("job-view")).to_have_count(0)
    row.get_by_role("button").click()
    view = page.get_by_test_id("job-view")
    expect(view).to_have_attribute("data-job-id", job_id)
    cards = view.locator("li.task-card")
    expect(cards).to_have_count(6)
    expect(view.locator("[data-testid^=result-link-]")).to_have_count(6)

    downloaded_by_click = False
    for card in cards.all():
        task_id = (card.get_attribute("data-testid") or "").removeprefix("task-")
        stem = Path(card.locator(".task-title").inner_text()).stem
        link = card.get_by_test_id(f"result-link-{task_id}")
        if not downloaded_by_click:
            with page.expect_download() as download:
                link.click()
            body = Path(download.value.path()).read_bytes()
            downloaded_by_click = True
        else:
            response = page.request.get(link.evaluate("a => a.href"))
            assert response.ok, response.status
            assert response.headers["content-type"] == "image/png"
            body = response.body()
        assert body.startswith(b"\x89PNG"), f"result of {task_id} is not a PNG"
        assert same_pixels(decode(body), expected[stem]), f"{task_id} ({stem}) differs from Pillow"

    with page.expect_download() as download:
        view.get_by_test_id("zip-link").click()
    with zipfile.ZipFile(download.value.path()) as archive:
        names = archive.namelist()
        assert len(names) == 6 and all(name.endswith(".png") for name in names), names
        # A job the page uploads keeps its files' names: uno.png, uno-2.png, uno-3.png, ...
        for name in names:
            stem = re.sub(r"-\d+$", "", Path(name).stem)
            assert same_pixels(decode(archive.read(name)), expected[stem]), name


def test_node_card_shows_live_metrics_and_turns_offline_when_the_worker_is_killed(
    cluster: Cluster, dashboard: Dashboard
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("nodo-a")
    page = dashboard.open(cluster.url)
    card = page.get_by_test_id("node-card-nodo-a")

    expect(card).to_have_attribute("data-status", re.compile(r"^(free|busy)$"))
    expect(card.get_by_test_id("metric-cpu")).to_have_text(re.compile(r"^\d{1,3} %$"))
    # The machine's RAM in use is never 0 % once the worker has reported a real sample.
    expect(card.get_by_test_id("metric-ram")).to_have_text(re.compile(r"^([1-9]\d?|100) %$"))
    expect(card.get_by_test_id("metric-net")).to_have_text(re.compile(r"^\d+(\.\d+)? MB/s$"))
    expect(card.get_by_test_id("last-seen")).to_have_count(0)
    # The link as the coordinator sees it: its reports' round trip, seconds since the last one.
    expect(card.get_by_test_id("node-link")).to_have_text(re.compile(r"^↔ \d+ ms · \d+\.\d s ago$"))

    sent = cluster.submit_task("sleep", {"seconds": 5})
    task_id = cluster.job(sent["job_id"])["tasks"][0]["task_id"]
    expect(card).to_have_attribute("data-status", "busy")
    expect(card.get_by_test_id("current-task")).to_have_text(task_id[:8])

    cluster.kill("nodo-a")  # SIGKILL, mid-task
    # Silent for 3 report intervals (1 s each) means offline; the page hears it within a second.
    expect(card).to_have_attribute("data-status", "offline", timeout=12_000)
    expect(card.get_by_test_id("last-seen")).to_have_text(re.compile(r"^last seen \d+ s ago$"))
    expect(card.get_by_test_id("current-task")).to_have_count(0)
    look = card.evaluate(
        "el => ({filter: getComputedStyle(el).filter,"
        " opacity: Number(getComputedStyle(el).opacity)})"
    )
    assert "grayscale" in look["filter"] and look["opacity"] < 1, look


def test_the_page_lists_files_the_api_refused_and_shows_its_error_detail(
    cluster: Cluster, dashboard: Dashboard
) -> None:
    cluster.start_coordinator()
    not_an_image = b"just some text, not pixels\n" * 20
    bad_ops = "grayscale,blur:500"  # blur's radius goes up to 100: only the API knows the rule
    with cluster.client() as client:
        unsupported = client.post("/upload", files=[("file", ("notas.jpg", not_an_image))])
        invalid = client.post("/jobs", json={"ops": bad_ops})
    assert unsupported.status_code == 415, unsupported.text
    assert invalid.status_code == 422, invalid.text
    unsupported_detail, invalid_detail = unsupported.json()["detail"], invalid.json()["detail"]
    assert "step 2" in invalid_detail and "blur" in invalid_detail, invalid_detail

    page = dashboard.open(cluster.url)
    upload_through_page(page, {"notas.jpg": not_an_image}, "grayscale", copies=1)
    # The file is listed with the coordinator's reason; a job that took nothing is cancelled.
    reason = unsupported_detail.removeprefix("notas.jpg: ")
    expect(page.get_by_test_id("refused-file")).to_have_text(f"notas.jpg: {reason}")
    expect(page.get_by_test_id("upload-success")).to_have_text(re.compile(r"sent: 0 tasks\.$"))

    upload_through_page(page, {"ok.jpg": sample_image()}, bad_ops, copies=1)
    expect(page.get_by_test_id("error-message")).to_have_text(invalid_detail)
    expect(page.get_by_test_id("upload-success")).to_have_count(0)
    with cluster.client() as client:
        jobs = client.get("/jobs").json()
    assert [(j["state"], j["total"]) for j in jobs] == [("cancelled", 0)]


def expect_english(page: Page) -> None:
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Process images")).to_be_visible()
    expect(page.get_by_test_id("upload-submit")).to_have_text("Process")
    expect(page.get_by_test_id("connection")).to_have_text("Live")
    expect(page.get_by_test_id("node-card-nodo-i18n")).to_contain_text("free")
    expect(page.get_by_test_id("lang-en")).to_have_attribute("aria-pressed", "true")


def test_spanish_for_a_spanish_browser_english_by_choice_kept_after_reload(
    cluster: Cluster, dashboard: Dashboard
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("nodo-i18n")
    page = dashboard.open(cluster.url, locale="es-ES")

    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_role("heading", name="Procesar imágenes")).to_be_visible()
    expect(page.get_by_test_id("upload-submit")).to_have_text("Procesar")
    expect(page.get_by_test_id("connection")).to_have_text("En vivo")
    expect(page.get_by_test_id("node-card-nodo-i18n")).to_contain_text("libre")
    expect(page.get_by_test_id("lang-es")).to_have_attribute("aria-pressed", "true")

    page.get_by_test_id("lang-en").click()
    expect_english(page)
    page.reload()
    expect_english(page)


def test_banner_while_the_coordinator_is_down_and_jobs_survive_its_restart(
    cluster: Cluster, dashboard: Dashboard
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("nodo-r")
    job = cluster.wait_job(cluster.upload([("antes.jpg", sample_image())])["job_id"])
    assert job["state"] == "done", job
    page = dashboard.open(cluster.url)
    expect(job_progress(page, job["job_id"])).to_have_attribute("aria-valuenow", "100")
    banner = page.get_by_test_id("disconnected-banner")
    expect(banner).to_have_count(0)

    # Exits (uvicorn re-raises the signal after its graceful shutdown, so the code is -15).
    cluster.send_signal("coordinator", signal.SIGTERM)
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Disconnected from the coordinator")

    cluster.start_coordinator()  # same DATA_DIR, same port
    expect(banner).to_have_count(0, timeout=30_000)
    expect(page.get_by_test_id("connection")).to_have_text("Live")
    expect(job_progress(page, job["job_id"])).to_have_attribute("aria-valuenow", "100")
    expect(page.get_by_test_id("node-card-nodo-r")).to_have_attribute(
        "data-status", re.compile(r"^(free|busy)$"), timeout=30_000
    )
    page.reload()
    expect(page.get_by_test_id(f"job-row-{job['job_id']}")).to_have_attribute("data-state", "done")


def test_phone_width_fits_and_every_control_has_an_accessible_name(
    cluster: Cluster, dashboard: Dashboard
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("nodo-movil-con-un-nombre-largo")
    sent = cluster.upload(
        [("una-foto-con-un-nombre-bastante-largo-para-un-movil.jpg", sample_image())],
        ops="grayscale,blur:2,thumbnail:128",
    )
    cluster.wait_job(sent["job_id"])
    page = dashboard.open(
        f"{cluster.url}/#job={sent['job_id']}", viewport=PHONE, is_mobile=True, has_touch=True
    )

    card = page.get_by_test_id("node-card-nodo-movil-con-un-nombre-largo")
    expect(card).to_be_visible()
    expect(page.get_by_test_id("upload-form")).to_be_visible()
    view = page.get_by_test_id("job-view")
    expect(view.locator("[data-testid^=result-link-]")).to_have_count(1)
    assert scroll_width(page) <= PHONE["width"], f"scrolls sideways: {scroll_width(page)} px"
    for part in (card, page.get_by_test_id("upload-form"), view):
        box = part.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box

    # Files chosen (their chips add buttons) and the pipeline's step rows are in the tree too.
    page.get_by_test_id("file-input").set_input_files([file_payload("x.jpg", sample_image())])
    expect(page.get_by_role("button", name="Remove x.jpg")).to_be_visible()
    assert scroll_width(page) <= PHONE["width"], f"scrolls sideways: {scroll_width(page)} px"
    assert unnamed_controls(page) == []
    for role, name in [
        ("button", "Process"),
        ("spinbutton", "Copies"),
        ("textbox", "Ops string"),
        ("combobox", "Operation to add"),
        ("button", "Images"),
        ("button", "Close job"),
        ("link", "Download all (zip)"),
        ("link", "Download"),
        ("button", "Add"),
        ("group", "Language"),
        ("button", "Remove step 1 (grayscale)"),
    ]:
        expect(page.get_by_role(role, name=name, exact=True)).to_have_count(1)


def test_embedded_coordinator_shows_its_own_node_and_finishes_an_upload(
    embedded_cluster: Cluster, dashboard: Dashboard
) -> None:
    embedded_cluster.start_coordinator()
    page = dashboard.open(embedded_cluster.url)

    local = page.locator("[data-testid^=node-card-]").filter(
        has=page.get_by_test_id("coordinator-badge")
    )
    expect(local).to_have_count(1)
    expect(local).to_have_attribute("data-status", re.compile(r"^(free|busy)$"))
    expect(local.get_by_test_id("coordinator-badge")).to_have_text("coordinator")

    upload_through_page(page, {"sola.png": sample_image(fmt="PNG")}, "grayscale", copies=1)
    job_id = uploaded_job_id(page)
    expect(job_progress(page, job_id)).to_have_attribute(
        "aria-valuenow", "100", timeout=JOB_TIMEOUT_MS
    )
    expect(page.get_by_test_id(f"job-row-{job_id}")).to_have_attribute("data-state", "done")
    expect(local.get_by_test_id("processed")).to_have_text("1")
