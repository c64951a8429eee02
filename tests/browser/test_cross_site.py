"""Another website open in the user's browser cannot drive the coordinator on their machine:
its cross-site upload is refused, and a DNS-rebinding page reads nothing. Real Chromium, whose
resolver maps the attacker's names to 127.0.0.1."""

from __future__ import annotations

import base64
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from browser.conftest import CHROMIUM, CHROMIUM_ARGS, BrowserSession
from support.api import png_bytes
from support.cluster import Cluster, free_port

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ATTACKER = "evil.test"
REBINDING = "rebind.test"

ATTACK_PAGE = """<!doctype html><title>cute cats</title><script>
const png = Uint8Array.from(atob("{png}"), (c) => c.charCodeAt(0));
const form = new FormData();
form.append("file", new Blob([png], {{type: "image/png"}}), "cat.png");
form.append("copies", "1000");
// multipart/form-data needs no CORS preflight: the browser just sends it.
fetch("{target}/upload", {{method: "POST", mode: "no-cors", body: form}})
  .then(() => {{ document.title = "sent"; }}, (e) => {{ document.title = "error " + e; }});
</script>"""


@pytest.fixture
def attacker_site(tmp_path: Path) -> Iterator[int]:
    """An HTTP server for the attacker's pages (its port); the browser reaches it as evil.test."""
    root = tmp_path / "evil"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def resolving_browser(browser_session: BrowserSession) -> Iterator[Browser]:
    """Chromium whose resolver sends the attacker's host names to this machine."""
    if browser_session.playwright is None:
        pytest.fail(browser_session.problem or "no browser", pytrace=False)
    rules = f"--host-resolver-rules=MAP {ATTACKER} 127.0.0.1, MAP {REBINDING} 127.0.0.1"
    browser = browser_session.playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, rules]
    )
    try:
        yield browser
    finally:
        browser.close()


def test_a_page_of_another_site_cannot_queue_work(
    embedded_cluster: Cluster, attacker_site: int, resolving_browser: Browser, tmp_path: Path
) -> None:
    embedded_cluster.start_coordinator()
    page_text = ATTACK_PAGE.format(
        png=base64.b64encode(png_bytes()).decode(), target=embedded_cluster.url
    )
    (tmp_path / "evil" / "index.html").write_text(page_text)
    page = resolving_browser.new_page()
    page.goto(f"http://{ATTACKER}:{attacker_site}/")
    expect(page).to_have_title("sent")
    with embedded_cluster.client() as client:
        assert client.get("/jobs").json() == []
    assert (
        "refused POST /upload: a cross-site request"
        in embedded_cluster.logs["coordinator"].read_text()
    )


def test_a_dns_rebinding_page_reads_nothing(
    embedded_cluster: Cluster, resolving_browser: Browser
) -> None:
    embedded_cluster.start_coordinator()
    # After rebinding, the attacker's name points at 127.0.0.1: the page is now same-origin
    # with the coordinator as far as the browser knows, and reads whatever it answers.
    page = resolving_browser.new_page()
    response = page.goto(f"http://{REBINDING}:{embedded_cluster.port}/jobs")
    assert response is not None and response.status == 400
    assert "ALLOWED_HOSTS" in page.content()

    # The dashboard itself, on the coordinator's own name, still works.
    page.goto(f"{embedded_cluster.url}/")
    expect(page.get_by_test_id("upload-submit")).to_be_visible()
