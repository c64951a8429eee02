"""Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright for the dashboard tests.

One browser for the browser tests; every test opens its pages through the `dashboard` fixture,
which gives each page a fresh context (storage, locale, viewport), screenshots it into the test's
tmp_path when the test fails, and fails the test on an uncaught error in the page's JavaScript.

The browser lives for the module, not the whole session: Playwright's sync API marks its event
loop as running in the main thread until it stops, and while it does `asyncio.run` and every
pytest-asyncio test of the other suites (collected after tests/browser) would fail.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Long enough for a loaded 2-core machine; the waits themselves say how long they may take.
DEFAULT_TIMEOUT_MS = 15_000
expect.set_options(timeout=DEFAULT_TIMEOUT_MS)


@dataclass
class BrowserSession:
    """The session's browser, or why there is none (reported by the test that needs it)."""

    playwright: Playwright | None = None
    browser: Browser | None = None
    problem: str | None = None


@pytest.fixture(scope="module")
def browser_session() -> Iterator[BrowserSession]:
    """Start Playwright and Chromium once for the module (see above). A missing or broken
    Chromium is not a skip: every browser test then fails with the reason (CI installs Debian's
    `chromium`)."""
    session = BrowserSession()
    if not CHROMIUM.exists():
        session.problem = (
            f"{CHROMIUM} is missing: the dashboard tests need Debian's chromium "
            "(apt-get install chromium); Playwright's own browser downloads are not used"
        )
        yield session
        return
    try:
        session.playwright = sync_playwright().start()
        session.browser = session.playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
    except Exception as exc:
        session.problem = f"could not launch {CHROMIUM} through Playwright: {exc}"
    try:
        yield session
    finally:
        if session.browser is not None:
            session.browser.close()
        if session.playwright is not None:
            session.playwright.stop()


@dataclass
class Dashboard:
    """Opens the dashboard in fresh browser contexts and remembers them for clean-up."""

    session: BrowserSession
    contexts: list[BrowserContext] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def open(self, url: str, *, locale: str = "en-US", **context_options: Any) -> Page:
        """A new context (own storage) with `locale`, and a page on `url`."""
        if self.session.browser is None:
            pytest.fail(self.session.problem or "no browser", pytrace=False)
        context = self.session.browser.new_context(
            locale=locale, accept_downloads=True, **context_options
        )
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        self.pages.append(page)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("console", lambda msg: self.console.append(f"[{msg.type}] {msg.text}"))
        page.goto(url)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Keep each phase's report on the item, so fixtures can tell that the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def dashboard(
    browser_session: BrowserSession, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Dashboard]:
    """Pages on the dashboard; screenshots into tmp_path if the test fails."""
    board = Dashboard(browser_session)
    try:
        yield board
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            for index, page in enumerate(board.pages):
                shot = tmp_path / f"failure-{index}.png"
                try:
                    page.screenshot(path=str(shot), full_page=True)
                    print(f"screenshot of page {index} ({page.url}): {shot}")
                except Exception as exc:
                    print(f"no screenshot of page {index}: {exc}")
            if board.console:
                print("browser console:\n" + "\n".join(board.console[-40:]))
        board.close()
    if board.page_errors:
        pytest.fail("uncaught errors in the page:\n" + "\n".join(board.page_errors))
